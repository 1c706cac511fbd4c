// The scale-out queue's parts: URLs, the Redis client against a real
// redis-server (reconnection after a restart), the queued request and the
// mirrored job state (tests/scaleout runs the whole cluster).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "artifacts/s3_store.h"
#include "core/error.h"
#include "queue/redis.h"
#include "server/job.h"

namespace vg {
namespace {

using queue::parse_redis_url;

TEST(QueueUrl, RedisUrlsAsUsersWriteThem) {
  auto u = parse_redis_url("redis://10.0.0.5:6380/2");
  EXPECT_EQ(u.host, "10.0.0.5");
  EXPECT_EQ(u.port, 6380);
  EXPECT_EQ(u.db, 2);
  EXPECT_EQ(u.text, "redis://10.0.0.5:6380/2");
  u = parse_redis_url("redis://:s3cret@cache/0");
  EXPECT_EQ(u.password, "s3cret");
  EXPECT_EQ(u.host, "cache");
  EXPECT_EQ(u.port, 6379);
  EXPECT_EQ(u.text.find("s3cret"), std::string::npos) << "messages never show the password";
  u = parse_redis_url("redis://user:pw@[::1]:7000");
  EXPECT_EQ(u.host, "::1");
  EXPECT_EQ(u.port, 7000);
  EXPECT_EQ(u.password, "pw");
  EXPECT_EQ(parse_redis_url("redis://").host, "127.0.0.1");
}

TEST(QueueUrl, BadRedisUrlsAreInvalidArguments) {
  for (const char* bad : {"http://127.0.0.1:6379", "redis://h:99999", "redis://h:", "redis://h:6a", "redis://h/x", "127.0.0.1"}) {
    try {
      parse_redis_url(bad);
      ADD_FAILURE() << bad;
    } catch (const VgException& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << bad;
      EXPECT_NE(std::string(e.what()).find("redis://HOST:PORT/DB"), std::string::npos) << e.what();
    }
  }
}

TEST(QueueUrl, S3UrlsAndCredentials) {
  setenv("AWS_ACCESS_KEY_ID", "AK", 1);
  setenv("AWS_SECRET_ACCESS_KEY", "SK", 1);
  auto loc = parse_s3_url("s3://my-bucket/results/run1", "http://127.0.0.1:9000/", "");
  EXPECT_EQ(loc.bucket, "my-bucket");
  EXPECT_EQ(loc.prefix, "results/run1/");
  EXPECT_EQ(loc.endpoint, "http://127.0.0.1:9000");
  EXPECT_EQ(loc.region, "us-east-1");
  EXPECT_EQ(parse_s3_url("s3://b", "", "eu-west-3").endpoint, "https://s3.eu-west-3.amazonaws.com");
  for (const char* bad : {"s3://", "s3://Bad_Bucket", "file:///tmp", "s3://b/../x"})
    EXPECT_THROW(parse_s3_url(bad, "", ""), VgException) << bad;
  EXPECT_THROW(parse_s3_url("s3://b", "ftp://host", ""), VgException);
  unsetenv("AWS_SECRET_ACCESS_KEY");
  try {
    parse_s3_url("s3://b", "", "");
    ADD_FAILURE() << "no credentials";
  } catch (const VgException& e) {
    EXPECT_NE(std::string(e.what()).find("AWS_SECRET_ACCESS_KEY"), std::string::npos);
  }
  unsetenv("AWS_ACCESS_KEY_ID");
}

TEST(QueueUrl, PresignedUrlsHaveTheSigV4Shape) {
  const std::string url = sigv4_presign("GET", "http://127.0.0.1:9000", "/b/p/abc", "us-east-1", "AK", "SK",
                                        "20261207T220000Z", 3600);
  EXPECT_EQ(url.rfind("http://127.0.0.1:9000/b/p/abc?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AK%2F20261207%2Fus-east-1"
                      "%2Fs3%2Faws4_request&X-Amz-Date=20261207T220000Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host"
                      "&X-Amz-Signature=",
                      0),
            0u)
      << url;
  EXPECT_EQ(url.size() - url.find("X-Amz-Signature=") - 16, 64u);
  // every input is signed: another key, time, path or lifetime gives another signature
  auto sig = [](const std::string& u) { return u.substr(u.find("X-Amz-Signature=")); };
  EXPECT_NE(sig(url), sig(sigv4_presign("GET", "http://127.0.0.1:9000", "/b/p/abc", "us-east-1", "AK", "SK2", "20261207T220000Z", 3600)));
  EXPECT_NE(sig(url), sig(sigv4_presign("GET", "http://127.0.0.1:9000", "/b/p/abd", "us-east-1", "AK", "SK", "20261207T220000Z", 3600)));
  EXPECT_NE(sig(url), sig(sigv4_presign("GET", "http://127.0.0.1:9000", "/b/p/abc", "us-east-1", "AK", "SK", "20261207T220001Z", 3600)));
  EXPECT_NE(sig(url), sig(sigv4_presign("GET", "http://127.0.0.1:9000", "/b/p/abc", "us-east-1", "AK", "SK", "20261207T220000Z", 60)));
}

TEST(QueueJob, RequestsSurviveTheQueueWithTheirImages) {
  server::JobRequest r;
  r.model = "sd1-tiny";
  r.video_format = "webm";
  r.params.prompt = "a red circle, \"quoted\"\nsecond line";
  r.params.seed = 1234;
  r.params.steps = 7;
  r.params.strength = 0.6f;
  r.params.set_fields = {"prompt", "seed", "steps", "strength"};
  Image im{8, 4, 3, std::vector<uint8_t>(8 * 4 * 3)};
  for (size_t i = 0; i < im.pixels.size(); ++i) im.pixels[i] = static_cast<uint8_t>(i * 7);
  r.init_image = im;
  const auto back = server::job_request_from_queue(nlohmann::json::parse(server::job_request_to_json(r).dump()));
  EXPECT_EQ(back.model, "sd1-tiny");
  EXPECT_EQ(back.video_format, "webm");
  EXPECT_EQ(back.params.prompt, r.params.prompt);
  EXPECT_EQ(back.params.seed, 1234);
  EXPECT_EQ(back.params.steps, 7);
  EXPECT_FLOAT_EQ(back.params.strength, 0.6f);
  EXPECT_EQ(back.params.set_fields, r.params.set_fields);
  ASSERT_TRUE(back.init_image.has_value());
  // images travel as lossless PNG, decoded as an uploaded image is (RGBA with opaque alpha)
  const Image& b = *back.init_image;
  ASSERT_EQ(b.width * b.height, 32);
  for (int i = 0; i < 32; ++i)
    for (int c = 0; c < 3; ++c) ASSERT_EQ(b.pixels[i * b.channels + c], im.pixels[i * 3 + c]) << i;
  EXPECT_FALSE(back.mask.has_value());
  EXPECT_THROW(server::job_request_from_queue(nlohmann::json::parse("[1]")), VgException);
}

TEST(QueueJob, AFrontEndMirrorShowsWhatTheWorkerReported) {
  server::Job w;
  w.id = "job_0123456789abcdef01234567";
  w.status = server::JobStatus::kCompleted;
  w.phase = "completed";
  w.step = w.steps = 4;
  w.model_used = "sd1-tiny";
  w.worker = "w2";
  w.attempts = 2;
  w.sampling.sampler_in = "euler";
  w.sampling.sampler_effective = "euler";
  w.warnings = {"clip_skip ignored"};
  w.images.push_back({std::string(64, 'a'), 64, 48, 99, "a red circle\nSteps: 4", "image/png", 0, 0, "http://s3/x?sig"});
  const nlohmann::json state = w.to_json_locked(0);
  server::Job m;
  m.id = w.id;
  server::job_apply_json_locked(m, state);
  auto mirrored = m.to_json_locked(0);
  mirrored["created"] = state["created"];
  EXPECT_EQ(mirrored, state);
  server::Job f;
  f.id = w.id;
  server::job_apply_json_locked(f, {{"status", "failed"}, {"error", {{"code", "corrupt_file"}, {"message", "bad"}}}});
  EXPECT_EQ(f.status, server::JobStatus::kFailed);
  EXPECT_EQ(f.error.code, ErrorCode::kCorruptFile);
}

// A real redis-server on a free port, in its own directory.
class RedisServer {
 public:
  RedisServer() {
    dir_ = std::filesystem::temp_directory_path() / ("vg-redis-" + std::to_string(getpid()));
    std::filesystem::create_directories(dir_);
    port_ = 20000 + getpid() % 20000;
    start();
  }
  ~RedisServer() {
    stop();
    std::filesystem::remove_all(dir_);
  }
  void start() {
    pid_ = fork();
    if (pid_ == 0) {
      const std::string port = std::to_string(port_), dir = dir_.string();
      execlp("redis-server", "redis-server", "--port", port.c_str(), "--bind", "127.0.0.1", "--dir", dir.c_str(),
             "--appendonly", "yes", "--save", "", "--logfile", "redis.log", nullptr);
      _exit(127);
    }
    queue::Redis probe(url());
    for (int i = 0; i < 100 && !probe.ping(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  void stop() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);  // redis-server writes its AOF out on SIGTERM
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  queue::RedisUrl url() const { return parse_redis_url("redis://127.0.0.1:" + std::to_string(port_) + "/3"); }

 private:
  std::filesystem::path dir_;
  int port_ = 0;
  pid_t pid_ = -1;
};

TEST(QueueRedis, CommandsPipelinesAndAReconnectAfterARestart) {
  if (system("command -v redis-server >/dev/null") != 0) GTEST_SKIP() << "redis-server is missing: scripts/install-deps.sh --test";
  RedisServer srv;
  queue::Redis r(srv.url());
  ASSERT_TRUE(r.ping());
  const std::string binary("a\0b\r\n", 5);
  EXPECT_EQ(r.must({"SET", "k", binary}).str, "OK");
  EXPECT_EQ(r.must({"GET", "k"}).str, binary) << "binary safe";
  auto p = r.pipeline({{"INCR", "n"}, {"INCR", "n"}, {"XADD", "s", "*", "f", "v"}, {"LPUSH", "k", "x"}});
  ASSERT_EQ(p.size(), 4u);
  EXPECT_EQ(p[1].as_int(), 2);
  EXPECT_EQ(p[2].type, queue::Reply::kString);
  EXPECT_TRUE(p[3].error()) << "a Redis error is a reply, not an exception";
  EXPECT_THROW(r.must({"LPUSH", "k", "x"}), VgException);
  EXPECT_TRUE(r.cmd({"GET", "missing"}).nil());
  srv.stop();
  try {
    r.cmd({"GET", "k"});
    ADD_FAILURE() << "Redis is down";
  } catch (const VgException& e) {
    EXPECT_EQ(e.code(), ErrorCode::kQueueUnavailable);
    EXPECT_NE(std::string(e.what()).find("redis://127.0.0.1:"), std::string::npos) << e.what();
  }
  srv.start();
  EXPECT_EQ(r.must({"GET", "k"}).str, binary) << "reconnected, and the AOF kept the data";
  EXPECT_EQ(r.must({"GET", "n"}).str, "2");
}

}  // namespace
}  // namespace vg
