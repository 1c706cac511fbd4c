// A visiongen server started for a test on a free port, and clients to it.
#pragma once
#include <httplib.h>

#include <memory>

#include "server/server.h"
#include "test_util.h"

namespace vg::test {

struct RunningServer {
  std::unique_ptr<server::Server> srv;
  int port = 0;
  int read_timeout_s = 60;
  httplib::Client client() const {
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(read_timeout_s, 0);
    return c;
  }
};

// Starts `o` on a free port with 2 threads.
inline RunningServer start_server(server::ServerOptions o, int read_timeout_s = 60) {
  o.port = 0;
  o.threads = 2;
  auto s = server::Server::create(o);
  EXPECT_TRUE(s) << s.error().to_string();
  RunningServer r;
  r.read_timeout_s = read_timeout_s;
  if (!s) return r;
  r.srv = std::move(*s);
  auto p = r.srv->start();
  EXPECT_TRUE(p);
  if (p) r.port = *p;
  return r;
}

}  // namespace vg::test
