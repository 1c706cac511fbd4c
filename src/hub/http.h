// Minimal HTTP for the Hub client on libcurl: one request at a time, no
// automatic redirects (the caller decides whether Authorization follows),
// headers returned lower-cased, optional streaming into a file.
#pragma once
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace vg::hub {

struct HttpResponse {
  long status = 0;  // 0 = network error (see error)
  std::map<std::string, std::string> headers;
  std::string body, error;
  uint64_t written = 0;  // bytes streamed into `out`
  int write_errno = 0;   // why writing into `out` failed (ENOSPC...), 0 if it did not
};

struct HttpRequest {
  std::string method = "GET", url;
  std::vector<std::string> headers;  // "Name: value"
  std::FILE* out = nullptr;          // stream the body here instead of `body`
  long timeout_s = 10;
  std::atomic<uint64_t>* progress = nullptr;  // bytes received so far, updated while transferring
  std::string body;                           // request body (POST/PUT)
  // libcurl's AWS Signature V4 ("aws:amz:REGION:s3") with "ACCESS:SECRET" (S3 stores).
  std::string aws_sigv4, aws_credentials;
};

HttpResponse http_send(const HttpRequest& req);
// Retries as huggingface_hub's http_backoff: 408/429/5xx and network errors.
bool retryable(long status);
// Wait before retry `attempt` (0-based): 1, 2, 4, 8, 8 s; on 429 the RateLimit
// header's t (when r=0) + 1, else Retry-After + 1.
double retry_wait_s(const HttpResponse& r, int attempt);
// Sleeps; on a terminal shows "<why>; retrying in N s", updated every second.
void wait_with_countdown(double seconds, const std::string& why);
std::string retry_reason(const HttpResponse& r);
// Up to 5 retries; before_retry runs before each new attempt.
HttpResponse send_with_retries(HttpRequest req, const std::function<void()>& before_retry = nullptr);

// scheme://host:port of a URL, for the same-host rule on redirects.
std::string url_origin(const std::string& url);
// Percent-encoding as huggingface_hub's quote(): unreserved characters kept,
// and '/' too when keep_slash (file paths); revisions use keep_slash = false
// (refs/pr/1 -> refs%2Fpr%2F1).
std::string url_quote(const std::string& s, bool keep_slash);

}  // namespace vg::hub
