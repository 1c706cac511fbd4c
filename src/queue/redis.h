// A small synchronous Redis client on hiredis: one connection, commands as
// argument vectors (binary safe), pipelines, reconnection after Redis
// restarts. Used by the scale-out front-end and workers (serve/worker --queue).
#pragma once
#include <string>
#include <vector>

struct redisContext;

namespace vg::queue {

// redis://[[user]:password@]host[:port][/db]; throws invalid_argument.
struct RedisUrl {
  std::string host = "127.0.0.1";
  int port = 6379;
  int db = 0;
  std::string password;
  std::string text;  // the URL without its password, for messages
};
RedisUrl parse_redis_url(const std::string& url);

// A copy of one hiredis reply.
struct Reply {
  enum Type { kNil, kString, kInteger, kArray, kStatus, kError } type = kNil;
  std::string str;  // string, status and error replies
  long long integer = 0;
  std::vector<Reply> elements;
  bool nil() const { return type == kNil; }
  bool error() const { return type == kError; }
  // The value as an integer (integer replies and numeric strings), else `fallback`.
  long long as_int(long long fallback = 0) const;
};

class Redis {
 public:
  explicit Redis(RedisUrl url);
  ~Redis();
  Redis(const Redis&) = delete;
  Redis& operator=(const Redis&) = delete;
  // Sends one command and waits for its reply; connects first when needed and
  // retries once on a fresh connection when the old one broke. Throws
  // VgException(queue_unavailable) when Redis cannot be reached. A reply
  // that is a Redis error comes back as Reply::kError.
  Reply cmd(const std::vector<std::string>& argv);
  // Several commands in one round trip; same failure rules as cmd().
  std::vector<Reply> pipeline(const std::vector<std::vector<std::string>>& cmds);
  // cmd() that throws VgException(internal) on an error reply too.
  Reply must(const std::vector<std::string>& argv);
  bool ping();
  const RedisUrl& url() const { return url_; }

 private:
  void connect();
  void drop();
  std::vector<Reply> send(const std::vector<std::vector<std::string>>& cmds);
  RedisUrl url_;
  redisContext* c_ = nullptr;
};

}  // namespace vg::queue
