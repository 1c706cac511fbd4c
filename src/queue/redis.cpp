#include "queue/redis.h"

#include <hiredis/hiredis.h>

#include <cstdlib>

#include "core/error.h"

namespace vg::queue {

namespace {

Reply copy_reply(const redisReply* r) {
  Reply out;
  if (!r) return out;
  switch (r->type) {
    case REDIS_REPLY_STRING: out.type = Reply::kString; break;
    case REDIS_REPLY_STATUS: out.type = Reply::kStatus; break;
    case REDIS_REPLY_ERROR: out.type = Reply::kError; break;
    case REDIS_REPLY_INTEGER: out.type = Reply::kInteger; break;
    case REDIS_REPLY_ARRAY: out.type = Reply::kArray; break;
    default: out.type = Reply::kNil; break;
  }
  if (r->str) out.str.assign(r->str, r->len);
  out.integer = r->integer;
  for (size_t i = 0; i < r->elements; ++i) out.elements.push_back(copy_reply(r->element[i]));
  return out;
}

[[noreturn]] void unreachable(const RedisUrl& u, const std::string& why) {
  fail(ErrorCode::kQueueUnavailable, "cannot reach the Redis queue at " + u.text + " (" + why +
                                         "); start redis-server there or fix --queue");
}

}  // namespace

long long Reply::as_int(long long fallback) const {
  if (type == kInteger) return integer;
  if (type != kString || str.empty()) return fallback;
  char* end = nullptr;
  const long long v = std::strtoll(str.c_str(), &end, 10);
  return end && *end == 0 ? v : fallback;
}

RedisUrl parse_redis_url(const std::string& url) {
  const std::string scheme = "redis://";
  auto bad = [&](const std::string& why) {
    fail(ErrorCode::kInvalidArgument, "--queue '" + url + "' " + why + "; write redis://HOST:PORT/DB (e.g. redis://127.0.0.1:6379/0)");
  };
  if (url.rfind(scheme, 0) != 0) bad("is not a redis:// URL");
  RedisUrl u;
  std::string rest = url.substr(scheme.size());
  const size_t at = rest.rfind('@');
  if (at != std::string::npos) {
    const std::string cred = rest.substr(0, at);
    const size_t colon = cred.find(':');
    u.password = colon == std::string::npos ? cred : cred.substr(colon + 1);
    rest = rest.substr(at + 1);
  }
  const size_t slash = rest.find('/');
  if (slash != std::string::npos) {
    const std::string db = rest.substr(slash + 1);
    if (!db.empty()) {
      if (db.find_first_not_of("0123456789") != std::string::npos || db.size() > 4) bad("has a database that is not a number");
      u.db = std::atoi(db.c_str());
    }
    rest = rest.substr(0, slash);
  }
  const size_t close = rest.rfind(']');  // [::1]:6379
  const size_t colon = rest.rfind(':');
  if (colon != std::string::npos && (close == std::string::npos ? rest.find(':') == colon : colon > close)) {
    const std::string port = rest.substr(colon + 1);
    if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos) bad("has a port that is not a number");
    u.port = std::atoi(port.c_str());
    if (u.port < 1 || u.port > 65535) bad("has a port out of range");
    rest = rest.substr(0, colon);
  }
  if (rest.size() > 2 && rest.front() == '[' && rest.back() == ']') rest = rest.substr(1, rest.size() - 2);
  if (!rest.empty()) u.host = rest;
  u.text = "redis://" + u.host + ":" + std::to_string(u.port) + "/" + std::to_string(u.db);
  return u;
}

Redis::Redis(RedisUrl url) : url_(std::move(url)) {}

Redis::~Redis() { drop(); }

void Redis::drop() {
  if (c_) redisFree(c_);
  c_ = nullptr;
}

void Redis::connect() {
  drop();
  timeval tv{2, 0};
  c_ = redisConnectWithTimeout(url_.host.c_str(), url_.port, tv);
  if (!c_ || c_->err) {
    const std::string why = c_ ? c_->errstr : "out of memory";
    drop();
    unreachable(url_, why);
  }
  timeval rw{30, 0};  // longer than any blocking read the queue issues
  redisSetTimeout(c_, rw);
  std::vector<std::vector<std::string>> hello;
  if (!url_.password.empty()) hello.push_back({"AUTH", url_.password});
  if (url_.db != 0) hello.push_back({"SELECT", std::to_string(url_.db)});
  for (const auto& r : send(hello))
    if (r.error()) {
      drop();
      unreachable(url_, r.str);
    }
}

std::vector<Reply> Redis::send(const std::vector<std::vector<std::string>>& cmds) {
  for (const auto& argv : cmds) {
    std::vector<const char*> ptr;
    std::vector<size_t> len;
    for (const auto& a : argv) ptr.push_back(a.data()), len.push_back(a.size());
    if (redisAppendCommandArgv(c_, static_cast<int>(argv.size()), ptr.data(), len.data()) != REDIS_OK)
      throw std::runtime_error(c_->errstr);
  }
  std::vector<Reply> out;
  for (size_t i = 0; i < cmds.size(); ++i) {
    void* r = nullptr;
    if (redisGetReply(c_, &r) != REDIS_OK || !r) throw std::runtime_error(c_->err ? c_->errstr : "no reply");
    out.push_back(copy_reply(static_cast<redisReply*>(r)));
    freeReplyObject(r);
  }
  return out;
}

std::vector<Reply> Redis::pipeline(const std::vector<std::vector<std::string>>& cmds) {
  for (int attempt = 0;; ++attempt) {
    if (!c_) connect();
    try {
      return send(cmds);
    } catch (const std::runtime_error& e) {
      drop();  // broken connection (Redis restarted?): one retry on a new one
      if (attempt > 0) unreachable(url_, e.what());
    }
  }
}

Reply Redis::cmd(const std::vector<std::string>& argv) { return pipeline({argv}).front(); }

Reply Redis::must(const std::vector<std::string>& argv) {
  Reply r = cmd(argv);
  if (r.error()) fail(ErrorCode::kInternal, "Redis refused " + argv.front() + ": " + r.str);
  return r;
}

bool Redis::ping() {
  try {
    return cmd({"PING"}).str == "PONG";
  } catch (const VgException&) {
    return false;
  }
}

}  // namespace vg::queue
