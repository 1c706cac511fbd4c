// The server under hostile or careless input: HTTPS (--tls-cert/--tls-key),
// keys from the environment instead of the command line, deeply nested JSON.
#include <fcntl.h>
#include <httplib.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>

#include "core/error.h"
#include "io/atomic_file.h"
#include "server/http_util.h"
#include "server_util.h"
#include "test_util.h"

extern char** environ;

namespace vg {
namespace {

namespace fs = std::filesystem;

// A self-signed certificate for "localhost" made with the openssl program.
struct Cert {
  std::string dir, cert, key;
  ~Cert() { fs::remove_all(dir); }
  Cert() {
    dir = (fs::temp_directory_path() / ("vg_tls_" + std::to_string(getpid()))).string();
    fs::create_directories(dir);
    cert = dir + "/cert.pem";
    key = dir + "/key.pem";
    const std::string cmd = "openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=localhost -days 2 -keyout " + key +
                            " -out " + cert + " -addext subjectAltName=DNS:localhost >/dev/null 2>&1";
    EXPECT_EQ(std::system(cmd.c_str()), 0);
  }
};

TEST(ServerTls, ServesHttpsAndRefusesPlainHttp) {
  Cert c;
  server::ServerOptions o;
  o.default_model = test::tiny_model();
  o.tls_cert = c.cert;
  o.tls_key = c.key;
  auto s = test::start_server(o);
  ASSERT_GT(s.port, 0);
  httplib::SSLClient https("localhost", s.port);
  https.set_ca_cert_path(c.cert.c_str());
  https.enable_server_certificate_verification(true);
  auto r = https.Get("/health");
  ASSERT_TRUE(r) << httplib::to_string(r.error());
  EXPECT_EQ(r->status, 200);
  httplib::Client plain("127.0.0.1", s.port);
  plain.set_read_timeout(5, 0);
  auto p = plain.Get("/health");
  EXPECT_TRUE(!p || p->status != 200);
}

TEST(ServerTls, BadCertificateSettingsAreClearErrors) {
  Cert c;
  server::ServerOptions o;
  o.tls_cert = c.cert;  // no key
  auto r = server::Server::create(o);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  o.tls_key = c.dir + "/missing.pem";
  r = server::Server::create(o);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kFileNotFound);
  EXPECT_NE(r.error().message.find("missing.pem"), std::string::npos);
  write_file_atomic(c.dir + "/garbage.pem", "not a key\n");
  o.tls_key = c.dir + "/garbage.pem";
  r = server::Server::create(o);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(r.error().message.find("TLS"), std::string::npos);
}

TEST(ServerHardening, DeeplyNestedJsonIsRefusedByName) {
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  try {
    server::parse_json_body(deep);
    FAIL() << "accepted";
  } catch (const VgException& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("nests JSON"), std::string::npos) << e.what();
  }
  // A number beyond double's range (found by fuzz_params_json): a 400, not an escaping out_of_range.
  EXPECT_EQ(test::code_of([] { server::parse_json_body(R"({"steps": 333e3333333})"); }), ErrorCode::kInvalidArgument);
  const std::string ok = R"({"prompt": "x", "a": [[[[{"b": [1]}]]]]})";
  EXPECT_EQ(server::parse_json_body(ok)["prompt"], "x");
  server::ServerOptions o;
  o.default_model = test::tiny_model();
  auto s = test::start_server(o);
  auto r = s.client().Post("/v1/jobs", "{\"prompt\": " + deep + "}", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(r->body.find("nests JSON"), std::string::npos);
}

// `visiongen serve` with the key in $VG_API_KEY (not on the command line).
TEST(ServerHardening, ApiKeyFromTheEnvironment) {
  int out[2];
  ASSERT_EQ(pipe(out), 0);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_addclose(&fa, out[0]);
  std::vector<std::string> env_s = {"VG_API_KEY=first-key,second-key"};
  for (char** e = environ; *e; ++e)
    if (std::string(*e).rfind("VG_API_KEY=", 0) != 0) env_s.push_back(*e);
  std::vector<char*> envp;
  for (auto& e : env_s) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::string cli = VG_CLI_PATH, model = test::tiny_model();
  std::vector<std::string> args_s = {cli, "serve", "--port", "0", "-m", model};
  std::vector<char*> argv;
  for (auto& a : args_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  pid_t pid = 0;
  ASSERT_EQ(posix_spawn(&pid, cli.c_str(), &fa, nullptr, argv.data(), envp.data()), 0);
  struct Reap {  // the server goes with the test, also when an assertion returns early
    pid_t pid;
    ~Reap() {
      kill(pid, SIGTERM);
      waitpid(pid, nullptr, 0);
    }
  } reap{pid};
  close(out[1]);
  FILE* f = fdopen(out[0], "r");
  char line[512] = {0};
  ASSERT_TRUE(fgets(line, sizeof line, f));
  const char* at = strstr(line, "127.0.0.1:");  // "visiongen serving on http://127.0.0.1:PORT/ ..."
  ASSERT_TRUE(at) << line;
  const int port = atoi(at + strlen("127.0.0.1:"));
  ASSERT_GT(port, 0) << line;
  httplib::Client c("127.0.0.1", port);
  EXPECT_EQ(c.Get("/v1/models")->status, 401);
  c.set_bearer_token_auth("second-key");
  EXPECT_EQ(c.Get("/v1/models")->status, 200);
  c.set_bearer_token_auth("first-key");
  EXPECT_EQ(c.Get("/metrics")->status, 200);
  httplib::Client anon("127.0.0.1", port);
  EXPECT_EQ(anon.Get("/metrics")->status, 401);  // metrics need the key too
  fclose(f);
  posix_spawn_file_actions_destroy(&fa);
}

}  // namespace
}  // namespace vg
