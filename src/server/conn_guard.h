// Closes connections whose client is too slow to send its request (slowloris
// headers, trickled bodies). cpp-httplib 0.11 bounds each single read only, so
// a client sending a byte every few seconds would hold a connection thread
// forever. A watchdog looks at the server's connections (its sockets in
// /proc/self/fd whose local port is the server's) twice a second and shuts
// down each one that has not delivered its request in time:
//  - headers: `timeout_s` from when the connection was first seen, or from
//    the end of its previous request (keep-alive);
//  - body: `timeout_s` more, plus one second per 64 KiB of Content-Length.
// A request whose handler runs (everything arrived) is never cut.
#pragma once
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <thread>

namespace vg::server {

class ConnGuard {
 public:
  explicit ConnGuard(int timeout_s) : timeout_s_(timeout_s) {}
  ~ConnGuard() { stop(); }
  void start(int port);  // once the server is bound
  void stop();
  // Called by the server: headers parsed, handler entered, response sent.
  void headers_read(const httplib::Request& req);
  void handling(const httplib::Request& req);
  void finished(const httplib::Request& req);
  uint64_t closed() const { return closed_; }  // connections cut so far

 private:
  enum class Phase { kHeaders, kBody, kHandler };
  struct Conn {
    Phase phase = Phase::kHeaders;
    std::chrono::steady_clock::time_point since;
    uint64_t body_bytes = 0;
  };
  void set(const httplib::Request& req, Phase phase, uint64_t body_bytes);
  void scan();
  const int timeout_s_;
  int port_ = 0;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::map<std::string, Conn> conns_;  // by the peer's "address:port"
  std::atomic<uint64_t> closed_{0};
  std::thread thread_;
};

// Registers route handlers, telling the guard when a handler starts.
class Router {
 public:
  using Handler = httplib::Server::Handler;
  Router(httplib::Server& s, ConnGuard& g) : s_(s), g_(g) {}
  void Get(const std::string& pattern, Handler h) { s_.Get(pattern, wrap(std::move(h))); }
  void Post(const std::string& pattern, Handler h) { s_.Post(pattern, wrap(std::move(h))); }
  void Put(const std::string& pattern, Handler h) { s_.Put(pattern, wrap(std::move(h))); }
  void Delete(const std::string& pattern, Handler h) { s_.Delete(pattern, wrap(std::move(h))); }
  void Options(const std::string& pattern, Handler h) { s_.Options(pattern, wrap(std::move(h))); }

 private:
  Handler wrap(Handler h) {
    return [&g = g_, h = std::move(h)](const httplib::Request& req, httplib::Response& res) {
      g.handling(req);
      h(req, res);
    };
  }
  httplib::Server& s_;
  ConnGuard& g_;
};

}  // namespace vg::server
