// Minimal HTTP for the Hub client on libcurl: one request at a time, no
// automatic redirects (the caller decides whether Authorization follows),
// headers returned lower-cased, optional streaming into a file.
#pragma once
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

namespace vg::hub {

struct HttpResponse {
  long status = 0;  // 0 = network error (see error)
  std::map<std::string, std::string> headers;
  std::string body, error;
  uint64_t written = 0;  // bytes streamed into `out`
};

struct HttpRequest {
  std::string method = "GET", url;
  std::vector<std::string> headers;  // "Name: value"
  std::FILE* out = nullptr;          // stream the body here instead of `body`
  long timeout_s = 10;
  std::atomic<uint64_t>* progress = nullptr;  // bytes received so far, updated while transferring
  std::string body;                           // request body (POST/PUT)
};

HttpResponse http_send(const HttpRequest& req);
// scheme://host:port of a URL, for the same-host rule on redirects.
std::string url_origin(const std::string& url);

}  // namespace vg::hub
