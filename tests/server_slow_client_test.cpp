// Slow clients (slowloris headers, trickled bodies) are cut after
// --client-timeout, so they cannot hold the connection threads; a request
// whose handler is running is never cut.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "server_util.h"
#include "test_util.h"

namespace vg {
namespace {

using Clock = std::chrono::steady_clock;

int connect_to(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  return fd;
}

// True once the server has closed `fd` (read gives EOF or a reset).
bool closed_by_server(int fd) {
  pollfd p{fd, POLLIN, 0};
  if (poll(&p, 1, 0) <= 0) return false;
  char c;
  const ssize_t n = recv(fd, &c, 1, MSG_DONTWAIT);
  return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

// Trickles `head` then endless header bytes into `fds`, one byte per socket
// every 200 ms (below any per-read timeout), until each is closed or `limit` passes.
// Returns the seconds until the last one was closed (or -1).
double trickle_until_closed(std::vector<int>& fds, const std::string& head, double limit_s) {
  const auto t0 = Clock::now();
  std::vector<bool> done(fds.size(), false);
  size_t left = fds.size(), i = 0;
  while (left > 0 && std::chrono::duration<double>(Clock::now() - t0).count() < limit_s) {
    for (size_t k = 0; k < fds.size(); ++k) {
      if (done[k]) continue;
      if (closed_by_server(fds[k])) {
        done[k] = true;
        --left;
        continue;
      }
      const char c = i < head.size() ? head[i] : 'a';
      (void)send(fds[k], &c, 1, MSG_NOSIGNAL);
    }
    ++i;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  for (int fd : fds) close(fd);
  return left == 0 ? std::chrono::duration<double>(Clock::now() - t0).count() : -1;
}

test::RunningServer slow_guarded_server(int timeout_s = 2) {
  server::ServerOptions o;
  o.default_model = test::tiny_model();
  o.client_timeout_s = timeout_s;
  return test::start_server(o, 30);
}

TEST(ServerSlowClients, SlowlorisHeadersAreCutAndOthersStillServed) {
  auto s = slow_guarded_server();
  ASSERT_GT(s.port, 0);
  std::vector<int> fds;
  for (int k = 0; k < 24; ++k) fds.push_back(connect_to(s.port));  // more than the connection threads
  double served_after = -1;
  std::thread other([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    const auto t0 = Clock::now();
    auto r = s.client().Get("/health");
    if (r && r->status == 200) served_after = std::chrono::duration<double>(Clock::now() - t0).count();
  });
  const double cut = trickle_until_closed(fds, "GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ", 15);
  other.join();
  EXPECT_GT(cut, 1.5);  // not before the timeout
  EXPECT_LT(cut, 5.0);  // 2 s + the guard's scan period, with slack
  EXPECT_GE(served_after, 0) << "a normal client was not served";
  EXPECT_LT(served_after, 5.0);
}

TEST(ServerSlowClients, TrickledBodyIsCut) {
  auto s = slow_guarded_server();
  ASSERT_GT(s.port, 0);
  std::vector<int> fds{connect_to(s.port)};
  const std::string head = "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 4000\r\n\r\n{\"prompt\":\"";
  const double cut = trickle_until_closed(fds, head, 15);
  EXPECT_GT(cut, 1.5);
  EXPECT_LT(cut, 5.0);
}

TEST(ServerSlowClients, RunningHandlerIsNotCut) {
  auto s = slow_guarded_server(1);
  ASSERT_GT(s.port, 0);
  // A synchronous generation that waits behind a slower queued job: its
  // connection stays quiet longer than the timeout while its handler runs.
  auto c = s.client();
  const std::string slow = R"({"prompt":"a","steps":20,"width":128,"height":128,"seed":1})";
  auto queued = c.Post("/v1/jobs", slow, "application/json");
  ASSERT_TRUE(queued && queued->status == 202);
  const auto t0 = Clock::now();
  auto r = c.Post("/generate", R"({"prompt":"b","steps":2,"width":64,"height":64,"seed":2})", "application/json");
  const double took = std::chrono::duration<double>(Clock::now() - t0).count();
  ASSERT_TRUE(r) << httplib::to_string(r.error());
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_GT(took, 2.0) << "the request did not outlast the timeout; make the queued job slower";
}

}  // namespace
}  // namespace vg
