#include "server/conn_guard.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdlib>
#include <filesystem>
#include <set>

namespace vg::server {

namespace {

using Clock = std::chrono::steady_clock;

// "address:port" of a socket address, as httplib writes Request::remote_addr.
std::string key_of(const sockaddr_storage& a) {
  char host[INET6_ADDRSTRLEN] = "";
  int port = 0;
  if (a.ss_family == AF_INET) {
    const auto& v4 = reinterpret_cast<const sockaddr_in&>(a);
    inet_ntop(AF_INET, &v4.sin_addr, host, sizeof host);
    port = ntohs(v4.sin_port);
  } else if (a.ss_family == AF_INET6) {
    const auto& v6 = reinterpret_cast<const sockaddr_in6&>(a);
    inet_ntop(AF_INET6, &v6.sin6_addr, host, sizeof host);
    port = ntohs(v6.sin6_port);
  }
  return std::string(host) + ":" + std::to_string(port);
}

int port_of(const sockaddr_storage& a) {
  if (a.ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in&>(a).sin_port);
  if (a.ss_family == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6&>(a).sin6_port);
  return -1;
}

// The peer of `fd` when it is a connection accepted on `port`, else "".
std::string connection_peer(int fd, int port) {
  sockaddr_storage local{}, peer{};
  socklen_t n = sizeof local;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &n) != 0 || port_of(local) != port) return "";
  int listening = 0;
  socklen_t ln = sizeof listening;
  if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &ln) != 0 || listening) return "";
  n = sizeof peer;
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &n) != 0) return "";
  return key_of(peer);
}

}  // namespace

void ConnGuard::start(int port) {
  if (timeout_s_ <= 0 || thread_.joinable()) return;
  port_ = port;
  thread_ = std::thread([this] {
    std::unique_lock<std::mutex> lock(mu_);
    while (!cv_.wait_for(lock, std::chrono::milliseconds(500), [this] { return stopping_; })) {
      lock.unlock();
      scan();
      lock.lock();
    }
  });
}

void ConnGuard::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void ConnGuard::set(const httplib::Request& req, Phase phase, uint64_t body_bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  Conn& c = conns_[req.remote_addr + ":" + std::to_string(req.remote_port)];
  c.phase = phase;
  c.since = Clock::now();
  c.body_bytes = body_bytes;
}

void ConnGuard::headers_read(const httplib::Request& req) {
  const std::string len = req.get_header_value("Content-Length");
  set(req, Phase::kBody, len.empty() ? 0 : std::strtoull(len.c_str(), nullptr, 10));
}

void ConnGuard::handling(const httplib::Request& req) { set(req, Phase::kHandler, 0); }

void ConnGuard::finished(const httplib::Request& req) { set(req, Phase::kHeaders, 0); }

void ConnGuard::scan() {
  const auto now = Clock::now();
  std::set<std::string> open;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd", ec)) {
    const std::string name = e.path().filename().string();
    if (std::filesystem::read_symlink(e.path(), ec).string().rfind("socket:", 0) != 0) continue;
    const int fd = std::atoi(name.c_str());
    const std::string peer = connection_peer(fd, port_);
    if (peer.empty()) continue;
    open.insert(peer);
    std::lock_guard<std::mutex> lock(mu_);
    auto [it, fresh] = conns_.try_emplace(peer);
    if (fresh) it->second.since = now;
    const Conn& c = it->second;
    if (c.phase == Phase::kHandler) continue;
    const auto allowed = std::chrono::seconds(timeout_s_ + (c.phase == Phase::kBody ? c.body_bytes / 65536 : 0));
    if (now - c.since <= allowed) continue;
    if (connection_peer(fd, port_) != peer) continue;  // the fd was closed and reused meanwhile
    shutdown(fd, SHUT_RDWR);  // the connection thread's read fails; httplib closes it
    conns_.erase(it);
    ++closed_;
  }
  std::lock_guard<std::mutex> lock(mu_);
  for (auto it = conns_.begin(); it != conns_.end();) it = open.count(it->first) ? std::next(it) : conns_.erase(it);
}

}  // namespace vg::server
