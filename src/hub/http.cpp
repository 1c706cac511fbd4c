#include "hub/http.h"

#include <curl/curl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <mutex>
#include <thread>

namespace vg::hub {

namespace {

size_t on_body(char* p, size_t sz, size_t n, void* ud) {
  auto* ctx = static_cast<std::pair<HttpResponse*, std::FILE*>*>(ud);
  const size_t len = sz * n;
  if (ctx->second) {
    if (std::fwrite(p, 1, len, ctx->second) != len) {
      ctx->first->write_errno = errno ? errno : EIO;
      return 0;  // curl stops with a write error
    }
    ctx->first->written += len;
  } else {
    ctx->first->body.append(p, len);
  }
  return len;
}

size_t on_header(char* p, size_t sz, size_t n, void* ud) {
  auto* r = static_cast<HttpResponse*>(ud);
  std::string line(p, sz * n);
  const size_t colon = line.find(':');
  if (line.rfind("HTTP/", 0) == 0) r->headers.clear();
  if (colon != std::string::npos) {
    std::string k = line.substr(0, colon), v = line.substr(colon + 1);
    std::transform(k.begin(), k.end(), k.begin(), ::tolower);
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.erase(v.begin());
    while (!v.empty() && (v.back() == '\r' || v.back() == '\n' || v.back() == ' ')) v.pop_back();
    r->headers[k] = v;
  }
  return sz * n;
}

int on_progress(void* ud, curl_off_t, curl_off_t now, curl_off_t, curl_off_t) {
  static_cast<std::atomic<uint64_t>*>(ud)->store(static_cast<uint64_t>(now));
  return 0;
}

}  // namespace

std::string url_origin(const std::string& url) {
  const size_t scheme = url.find("://");
  if (scheme == std::string::npos) return "";
  const size_t end = url.find('/', scheme + 3);
  return url.substr(0, end);
}

HttpResponse http_send(const HttpRequest& req) {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  HttpResponse r;
  CURL* c = curl_easy_init();
  if (!c) {
    r.error = "curl_easy_init failed";
    return r;
  }
  curl_slist* hs = nullptr;
  for (const auto& h : req.headers) hs = curl_slist_append(hs, h.c_str());
  std::pair<HttpResponse*, std::FILE*> ctx{&r, req.out};
  curl_easy_setopt(c, CURLOPT_URL, req.url.c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, hs);
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, req.timeout_s);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, req.timeout_s);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &ctx);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
  curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "identity");
  if (req.progress) {
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, req.progress);
  }
  if (!req.aws_sigv4.empty()) {
    curl_easy_setopt(c, CURLOPT_AWS_SIGV4, req.aws_sigv4.c_str());
    curl_easy_setopt(c, CURLOPT_USERPWD, req.aws_credentials.c_str());
  }
  if (req.method == "HEAD") curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  else if (req.method != "GET") curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req.method.c_str());
  if (req.method == "POST" || req.method == "PUT") {
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, req.body.data());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(req.body.size()));
  }
  const CURLcode rc = curl_easy_perform(c);
  if (rc == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
  else r.error = curl_easy_strerror(rc), r.status = 0;
  curl_slist_free_all(hs);
  curl_easy_cleanup(c);
  return r;
}

bool retryable(long s) { return s == 0 || s == 408 || s == 429 || s == 500 || s == 502 || s == 503 || s == 504; }

// The wait before retry number `attempt` (0-based): 1, 2, 4, 8, 8 s; on 429
// the `RateLimit: "api";r=0;t=55` header (t + 1 s) wins, then Retry-After + 1.
double retry_wait_s(const HttpResponse& r, int attempt) {
  double wait = std::min(8, 1 << std::min(attempt, 3));
  if (r.status != 429) return wait;
  auto it = r.headers.find("ratelimit");
  if (it != r.headers.end()) {
    const std::string& v = it->second;
    const size_t rp = v.find(";r="), tp = v.find(";t=");
    if (rp != std::string::npos && tp != std::string::npos && std::atol(v.c_str() + rp + 3) == 0)
      return std::atol(v.c_str() + tp + 3) + 1.0;
  }
  it = r.headers.find("retry-after");
  if (it != r.headers.end() && std::isdigit(static_cast<unsigned char>(it->second[0]))) return std::atol(it->second.c_str()) + 1.0;
  return wait;
}

// Sleeps, showing a countdown on a terminal (one line, rewritten each second).
void wait_with_countdown(double seconds, const std::string& why) {
  const bool tty = isatty(STDERR_FILENO);
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  for (;;) {
    const double left = std::chrono::duration<double>(end - std::chrono::steady_clock::now()).count();
    if (left <= 0) break;
    if (tty) std::fprintf(stderr, "\r\x1b[2K%s; retrying in %.0f s", why.c_str(), std::ceil(left));
    std::this_thread::sleep_for(std::chrono::duration<double>(std::min(left, 1.0)));
  }
  if (tty) std::fprintf(stderr, "\r\x1b[2K");
}

std::string retry_reason(const HttpResponse& r) {
  if (r.status == 0) return "network error (" + r.error + ")";
  if (r.status == 429) return "rate limited by the Hub (HTTP 429)";
  return "HTTP " + std::to_string(r.status) + " from the Hub";
}

// Up to 5 retries on 408/429/5xx and network errors.
HttpResponse send_with_retries(HttpRequest req, const std::function<void()>& before_retry) {
  HttpResponse r;
  for (int attempt = 0;; ++attempt) {
    r = http_send(req);
    if (!retryable(r.status) || attempt == 5) return r;
    wait_with_countdown(retry_wait_s(r, attempt), retry_reason(r));
    if (before_retry) before_retry();
  }
}

std::string url_quote(const std::string& s, bool keep_slash) {
  static const char* hex = "0123456789ABCDEF";
  std::string o;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || (keep_slash && c == '/')) o += static_cast<char>(c);
    else o += '%', o += hex[c >> 4], o += hex[c & 15];
  }
  return o;
}

}  // namespace vg::hub
