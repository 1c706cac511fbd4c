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

namespace vg {
namespace {

// Every request field that names a file on the server (model, LoRA, VAE,
// preview VAE, refiner, init image, mask) refuses paths, '..' and symlinks
// that lead out of the configured folders.
TEST(ServerHardening, PathFieldsStayInsideTheConfiguredFolders) {
  const fs::path root = fs::temp_directory_path() / ("vg_paths_" + std::to_string(getpid()));
  fs::remove_all(root);
  fs::create_directories(root / "loras" / "sub");
  fs::create_directories(root / "models");
  fs::create_symlink("/etc/hostname", root / "loras" / "escape.safetensors");  // leads out of the folder
  fs::create_directory_symlink("/etc", root / "models" / "etc");
  server::ServerOptions o;
  o.default_model = test::tiny_model();
  o.lora_dirs = {(root / "loras").string()};
  o.models_dirs = {(root / "models").string()};
  auto s = test::start_server(o);
  ASSERT_GT(s.port, 0);
  auto c = s.client();
  auto post = [&](const std::string& path, const std::string& body) {
    auto r = c.Post(path, body, "application/json");
    return r ? std::to_string(r->status) + " " + r->body : std::string("no answer");
  };
  const std::string head = R"({"prompt":"x","steps":1,"width":64,"height":64,)";
  struct Case {
    std::string body, code, says;
  };
  const Case cases[] = {
      {head + R"("loras":"/etc/hostname"})", "invalid_argument", "not a name inside the LoRA folders"},
      {head + R"("loras":"../../etc/hostname"})", "invalid_argument", "not a name inside the LoRA folders"},
      {head + R"("loras":"escape"})", "lora_not_found", "not in the LoRA folders"},
      {R"({"steps":1,"width":64,"height":64,"prompt":"x <lora:/etc/hostname:1>"})", "invalid_argument", "not a name inside the LoRA folders"},
      {head + R"("vae":"/etc"})", "invalid_argument", "'vae' must be a name inside"},
      {head + R"("vae":"../models"})", "invalid_argument", "'vae' must be a name inside"},
      {head + R"("vae":"etc"})", "file_not_found", "not in the server's model folders"},
      {head + R"("preview_vae":"/tmp"})", "invalid_argument", "'preview_vae' must be a name inside"},
      {head + R"("refiner":"/etc"})", "invalid_argument", "not a plain model name"},
      {head + R"("model":"etc"})", "unknown_model", "unknown model"},
  };
  for (const auto& k : cases) {  // the synchronous endpoint: refused at once, or the job fails before any work
    const std::string got = post("/generate", k.body);
    EXPECT_NE(got.find("\"" + k.code + "\""), std::string::npos) << k.body << " -> " << got;
    EXPECT_NE(got.find(k.says), std::string::npos) << k.body << " -> " << got;
  }
  // the OpenAI "extra" object and the native schema cannot name server files as images
  EXPECT_EQ(post("/v1/images/generations", R"({"prompt":"x","extra":{"init_image":"/etc/hostname"}})").substr(0, 3), "400");
  EXPECT_EQ(post("/v1/jobs", head + R"("init_image":"/etc/hostname"})").substr(0, 3), "400");
  fs::remove_all(root);
}

}  // namespace
}  // namespace vg

namespace vg {
namespace {

// A served model whose files vanish or are damaged between requests: a clean
// error for that model, and the server keeps serving the others.
TEST(ServerHardening, VanishedOrDamagedModelGivesACleanErrorAndServingGoesOn) {
  const fs::path root = fs::temp_directory_path() / ("vg_vanish_" + std::to_string(getpid()));
  fs::remove_all(root);
  fs::create_directories(root);
  fs::copy(test::tiny_model(), root / "copy", fs::copy_options::recursive);
  server::ServerOptions o;
  o.default_model = test::tiny_model();
  o.models_dirs = {root.string()};
  auto s = test::start_server(o);
  ASSERT_GT(s.port, 0);
  auto c = s.client();
  auto gen = [&](const std::string& model, const std::string& prompt) {
    auto r = c.Post("/generate", R"({"prompt":")" + prompt + R"(","steps":1,"width":64,"height":64,"model":")" + model + "\"}",
                    "application/json");
    if (!r) return std::string("no answer");
    const std::string body = r->body.substr(r->body.find_first_not_of(' '));  // the sync endpoint pads with spaces
    return std::to_string(r->status) + " " + body;
  };
  ASSERT_EQ(gen("copy", "a").substr(0, 3), "200");
  // damaged: the UNet file cut short, then the model reloaded
  const fs::path unet = root / "copy" / "unet" / "diffusion_pytorch_model.safetensors";
  ASSERT_TRUE(c.Post("/v1/models/copy/unload", "", "application/json"));
  fs::resize_file(unet, fs::file_size(unet) / 2);
  std::string r = gen("copy", "b");
  EXPECT_NE(r.find("corrupt_file"), std::string::npos) << r;
  EXPECT_NE(r.find("diffusion_pytorch_model.safetensors"), std::string::npos) << r;
  EXPECT_EQ(gen("", "c").substr(0, 3), "200");  // the default model still works
  // vanished: the whole folder gone
  fs::remove_all(root / "copy");
  r = gen("copy", "d");
  EXPECT_NE(r.find("unknown_model"), std::string::npos) << r;
  EXPECT_EQ(gen("", "e").substr(0, 3), "200");
  EXPECT_EQ(c.Get("/health")->status, 200);
  fs::remove_all(root);
}

}  // namespace
}  // namespace vg

namespace vg {
namespace {

// Bytes that are not UTF-8 in the path or quoted back in an error (found by
// the soak test: the 404 body's JSON text threw and killed the server).
TEST(ServerHardening, NonUtf8BytesInPathOrBodyGetAnErrorNotACrash) {
  server::ServerOptions o;
  o.default_model = test::tiny_model();
  auto s = test::start_server(o);
  ASSERT_GT(s.port, 0);
  auto c = s.client();
  auto r = c.Get("/%FF%FEnope");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  EXPECT_NE(r->body.find("file_not_found"), std::string::npos) << r->body;
  r = c.Post("/v1/jobs", std::string("{\"prompt\": \"\xff\xfe\"}"), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  r = c.Post("/sdapi/v1/txt2img", std::string("\xff{\x80", 3), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(c.Get("/health")->status, 200);
}

}  // namespace
}  // namespace vg

#include "io/image_decode.h"

namespace vg {
namespace {

// A PNG declaring w x h RGB pixels, with a tiny IDAT (far too little data for that size).
std::string png_header(uint32_t w, uint32_t h) {
  auto be32 = [](uint32_t v) { return std::string{char(v >> 24), char(v >> 16), char(v >> 8), char(v)}; };
  auto chunk = [&](const std::string& type_and_data) {
    uint32_t crc = 0xffffffffu;  // CRC-32 (PNG's), bit by bit
    for (unsigned char c : type_and_data) {
      crc ^= c;
      for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
    }
    return be32(static_cast<uint32_t>(type_and_data.size() - 4)) + type_and_data + be32(crc ^ 0xffffffffu);
  };
  const std::string idat("IDAT\x78\x9c\x63\x00\x00\x00\x01\x00\x01", 13);  // zlib of one 0 byte
  return std::string("\x89PNG\r\n\x1a\n", 8) + chunk("IHDR" + be32(w) + be32(h) + std::string{8, 2, 0, 0, 0}) +
         chunk(idat) + chunk("IEND");
}

// A few bytes of PNG may declare a huge image (found by fuzz_multipart: an image
// and a mask of 16384x16384 took gigabytes): refused from the header, by size.
TEST(ServerHardening, DecompressionBombImagesAreRefusedFromTheHeader) {
  try {
    decode_image(png_header(12000, 12000), "image");
    FAIL() << "accepted";
  } catch (const VgException& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("64 megapixels"), std::string::npos) << e.what();
  }
  EXPECT_EQ(test::code_of([] { decode_image(png_header(20000, 16), "image"); }), ErrorCode::kInvalidArgument);
  // a normal size gets past the size check (and fails later: no pixel data here)
  EXPECT_EQ(test::code_of([] { decode_image(png_header(1024, 768), "image"); }), ErrorCode::kCorruptFile);
}

}  // namespace
}  // namespace vg
