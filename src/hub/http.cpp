#include "hub/http.h"

#include <curl/curl.h>

#include <algorithm>
#include <mutex>

namespace vg::hub {

namespace {

size_t on_body(char* p, size_t sz, size_t n, void* ud) {
  auto* ctx = static_cast<std::pair<HttpResponse*, std::FILE*>*>(ud);
  const size_t len = sz * n;
  if (ctx->second) {
    if (std::fwrite(p, 1, len, ctx->second) != len) return 0;
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

}  // namespace vg::hub
