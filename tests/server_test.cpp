// End-to-end tests of the HTTP server: the real server on loopback with the
// tiny fixture model, driven over HTTP.
#include <arpa/inet.h>
#include <httplib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <future>
#include <thread>

#include "artifacts/store.h"
#include "io/atomic_file.h"
#include "io/image_decode.h"
#include "io/image_io.h"
#include "server/http_util.h"
#include "server/server.h"
#include "server_util.h"
#include "test_util.h"

namespace vg {
namespace {

using nlohmann::json;

test::RunningServer start(server::ServerOptions o = {}) {
  if (o.default_model.empty()) o.default_model = test::tiny_model();
  return test::start_server(o);
}

json body_of(const httplib::Result& r) {
  EXPECT_TRUE(r);
  return json::parse(r->body);
}

const char* kJson = "application/json";

std::string tiny_png() { return read_file(test::tiny() + "/inputs/test_image_64.png"); }
std::string mask_png() { return read_file(test::tiny() + "/inputs/test_mask_64.png"); }

TEST(Server, DiscoveryEndpoints) {
  auto s = start();
  auto c = s.client();
  auto caps = body_of(c.Get("/v1/capabilities"));
  EXPECT_TRUE(caps["tasks"]["text_to_image"]["supported"].get<bool>());
  EXPECT_TRUE(caps["tasks"]["text_to_video"]["supported"].get<bool>());
  EXPECT_EQ(caps["tasks"]["text_to_video"]["families"][0], "wan-2-2");
  EXPECT_FALSE(caps["tasks"]["upscale"]["supported"].get<bool>());
  EXPECT_EQ(caps["default_model"], "sd1-tiny");
  EXPECT_EQ(body_of(c.Get("/engines"))[0]["name"], "cpu");
  EXPECT_EQ(body_of(c.Get("/v1/models"))["data"][0]["id"], "sd1-tiny");
  EXPECT_EQ(body_of(c.Post("/v1/models/sd1-tiny/load", "", kJson))["loaded"], true);
  EXPECT_EQ(body_of(c.Get("/v1/system"))["loaded_models"][0], "sd1-tiny");
  EXPECT_EQ(body_of(c.Post("/v1/models/sd1-tiny/unload", "", kJson))["loaded"], false);
  auto ui = c.Get("/");
  ASSERT_TRUE(ui);
  EXPECT_NE(ui->body.find("<title>visiongen</title>"), std::string::npos);
  auto m = c.Get("/metrics");
  ASSERT_TRUE(m);
  EXPECT_NE(m->body.find("visiongen_queue_depth 0"), std::string::npos);
  EXPECT_EQ(c.Get("/nope")->status, 404);
}

TEST(Server, JobLifecycleWithEventsInOrder) {
  auto s = start();
  auto c = s.client();
  auto r = c.Post("/v1/jobs", R"({"prompt":"a cat","steps":3,"seed":5,"width":64,"height":64,"preview_every":1})", kJson);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 202) << r->body;
  const std::string id = json::parse(r->body)["id"];
  std::string sse;
  auto ev = c.Get("/v1/jobs/" + id + "/events", [&](const char* d, size_t n) {
    sse.append(d, n);
    return true;
  });
  ASSERT_TRUE(ev);
  // progress events come first, completed last, with increasing ids
  const size_t first_progress = sse.find("event: progress"), completed = sse.find("event: completed");
  ASSERT_NE(first_progress, std::string::npos) << sse;
  ASSERT_NE(completed, std::string::npos) << sse;
  EXPECT_LT(first_progress, completed);
  EXPECT_EQ(sse.find("event: progress", completed), std::string::npos);
  EXPECT_NE(sse.find("\"step\":3"), std::string::npos);
  const size_t preview = sse.find("event: preview");
  ASSERT_NE(preview, std::string::npos);
  EXPECT_LT(preview, completed);
  auto job = body_of(c.Get("/v1/jobs/" + id));
  EXPECT_EQ(job["status"], "completed");
  EXPECT_EQ(job["result"]["images"][0]["seed"], 5);
  const std::string uri = job["result"]["images"][0]["uri"];
  auto png = c.Get(uri);
  ASSERT_TRUE(png);
  EXPECT_EQ(png->get_header_value("Content-Type"), "image/png");
  EXPECT_EQ(decode_png(png->body, "artifact").width, 64);
  EXPECT_EQ(body_of(c.Get("/v1/jobs?status=completed"))["data"].size(), 1u);
  EXPECT_EQ(c.Get("/v1/jobs/job_missing")->status, 404);
  EXPECT_EQ(c.Get("/v1/artifacts/" + std::string(64, 'a'))->status, 404);
  EXPECT_EQ(c.Get("/v1/artifacts/../../etc/passwd")->status, 404);
}

TEST(Server, StrictNativeParsingNamesTheField) {
  auto s = start();
  auto c = s.client();
  auto r = c.Post("/v1/jobs", R"({"prompt":"x","stepz":3})", kJson);
  EXPECT_EQ(r->status, 400);
  auto e = json::parse(r->body)["error"];
  EXPECT_EQ(e["code"], "invalid_argument");
  EXPECT_NE(e["message"].get<std::string>().find("stepz"), std::string::npos);
  r = c.Post("/v1/jobs", R"({"prompt":"x","steps":"many"})", kJson);
  EXPECT_EQ(r->status, 400);
  r = c.Post("/v1/jobs", R"({"prompt":"x","steps":0})", kJson);
  EXPECT_EQ(json::parse(r->body)["error"]["param"], "steps");
  r = c.Post("/v1/jobs", "{not json", kJson);
  EXPECT_EQ(r->status, 400);
  r = c.Post("/v1/jobs", R"({"prompt":"x","model":"../../etc"})", kJson);
  EXPECT_EQ(r->status, 400);
  r = c.Post("/v1/jobs", R"({"prompt":"x","model":"no-such-model"})", kJson);
  EXPECT_EQ(r->status, 404);
  r = c.Post("/v1/jobs", R"({"prompt":"x","width":100000,"height":64})", kJson);
  EXPECT_EQ(r->status, 400);
}

TEST(Server, CancelRunningJobAndQueueFull) {
  server::ServerOptions o;
  o.max_queue = 1;
  auto s = start(o);
  auto c = s.client();
  const char* slow = R"({"prompt":"a cat","steps":400,"width":64,"height":64})";
  const std::string a = json::parse(c.Post("/v1/jobs", slow, kJson)->body)["id"];
  // wait until it runs
  for (int i = 0; i < 200 && body_of(c.Get("/v1/jobs/" + a))["status"] != "running"; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  auto b = c.Post("/v1/jobs", slow, kJson);
  EXPECT_EQ(b->status, 202);
  auto full = c.Post("/v1/jobs", slow, kJson);
  EXPECT_EQ(full->status, 429);
  EXPECT_EQ(json::parse(full->body)["error"]["code"], "busy");
  const std::string bid = json::parse(b->body)["id"];
  EXPECT_EQ(body_of(c.Post("/v1/jobs/" + bid + "/cancel", "", kJson))["status"], "cancelled");
  EXPECT_EQ(body_of(c.Post("/v1/jobs/" + a + "/cancel", "", kJson))["id"], a);
  EXPECT_EQ(c.Post("/v1/jobs/" + a + "/cancel", "", kJson)->status, 200);  // idempotent
  json st;
  for (int i = 0; i < 200; ++i) {
    st = body_of(c.Get("/v1/jobs/" + a));
    if (st["status"] == "cancelled") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(st["status"], "cancelled");
  EXPECT_LT(st["step"].get<int>(), 400);
}

TEST(Server, ClientDisconnectCancelsSynchronousJob) {
  auto s = start();
  const std::string body = R"({"prompt":"a cat","steps":600,"width":64,"height":64})";
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(s.port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  const std::string req = "POST /generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " +
                          std::to_string(body.size()) + "\r\n\r\n" + body;
  ASSERT_EQ(write(fd, req.data(), req.size()), static_cast<ssize_t>(req.size()));
  std::this_thread::sleep_for(std::chrono::milliseconds(800));
  close(fd);
  auto c = s.client();
  json jobs;
  for (int i = 0; i < 100; ++i) {
    jobs = body_of(c.Get("/v1/jobs"));
    if (!jobs["data"].empty() && jobs["data"][0]["status"] == "cancelled") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_FALSE(jobs["data"].empty());
  EXPECT_EQ(jobs["data"][0]["status"], "cancelled");
}

TEST(Server, SynchronousGenerateNamesEngineAndModel) {
  const std::string store = testing::TempDir() + "/vg_server_store";
  std::filesystem::remove_all(store);
  server::ServerOptions o;
  o.artifacts_dir = store;
  auto s = start(o);
  auto c = s.client();
  EXPECT_EQ(c.Post("/generate", R"({"prompt":"a cat","engine":"cuda"})", kJson)->status, 400);
  auto r = body_of(c.Post("/generate", R"({"prompt":"a cat","steps":2,"seed":9,"width":64,"height":64,"engine":"cpu"})", kJson));
  EXPECT_EQ(r["engine"], "cpu");
  EXPECT_EQ(r["model"], "sd1-tiny");
  auto png = server::base64_decode(r["images"][0]["b64_json"]);
  ASSERT_TRUE(png);
  EXPECT_NE(read_png_parameters(*png).find("Seed: 9"), std::string::npos);
  // the result is also in the artifact store, with its sidecar
  auto stored = ArtifactStore(store).get(r["images"][0]["id"]);
  ASSERT_TRUE(stored);
  EXPECT_EQ(stored->info["seed"], 9);
  EXPECT_EQ(stored->info["model"], "sd1-tiny");
}

TEST(Server, OpenAiGenerationsAndEdits) {
  auto s = start();
  auto c = s.client();
  auto r = c.Post("/v1/images/generations",
                  R"({"model":"dall-e-3","prompt":"a cat","n":2,"size":"64x64","steps":2,"seed":3,"response_format":"b64_json","vendor_field":1})",
                  kJson);
  ASSERT_EQ(r->status, 200) << r->body;
  auto j = json::parse(r->body);
  ASSERT_EQ(j["data"].size(), 2u);
  EXPECT_GT(j["created"].get<int64_t>(), 0);
  EXPECT_EQ(decode_png(*server::base64_decode(j["data"][1]["b64_json"]), "x").width, 64);
  j = body_of(c.Post("/v1/images/generations", R"({"prompt":"a cat","size":"64x64","steps":2,"response_format":"url"})", kJson));
  const std::string url = j["data"][0]["url"];
  EXPECT_EQ(url.rfind("http://", 0), 0u);
  EXPECT_EQ(c.Get(url.substr(url.find("/v1/")))->status, 200);
  auto bad = c.Post("/v1/images/generations", R"({"prompt":"a cat","size":"huge"})", kJson);
  EXPECT_EQ(bad->status, 400);
  auto e = json::parse(bad->body)["error"];
  EXPECT_EQ(e["type"], "invalid_request_error");
  EXPECT_EQ(e["param"], "size");
  EXPECT_TRUE(e.contains("message") && e.contains("code"));
  bad = c.Post("/v1/images/generations", R"({"size":"64x64"})", kJson);
  EXPECT_EQ(json::parse(bad->body)["error"]["param"], "prompt");
  // edits: multipart image + OpenAI-style alpha mask (transparent = edit)
  Image m = decode_image(mask_png(), "m");
  Image rgba = m;
  for (int i = 0; i < m.width * m.height; ++i) rgba.pixels[i * 4 + 3] = static_cast<uint8_t>(255 - m.pixels[i * 4]);
  Image rgb3;  // encode_png wants RGB; the alpha mask goes out as RGBA through our own writer below
  httplib::MultipartFormDataItems items = {{"image", tiny_png(), "image.png", "image/png"},
                                           {"prompt", "a dog", "", ""},
                                           {"n", "1", "", ""},
                                           {"steps", "2", "", ""}};
  auto er = c.Post("/v1/images/edits", items);
  ASSERT_EQ(er->status, 200) << er->body;
  EXPECT_EQ(decode_png(*server::base64_decode(json::parse(er->body)["data"][0]["b64_json"]), "x").height, 64);
  items.push_back({"mask", mask_png(), "mask.png", "image/png"});
  er = c.Post("/v1/images/edits", items);
  ASSERT_EQ(er->status, 200) << er->body;
}

TEST(Server, A1111Endpoints) {
  auto s = start();
  auto c = s.client();
  auto r = c.Post("/sdapi/v1/txt2img",
                  R"({"prompt":"a cat","steps":2,"width":64,"height":64,"seed":11,"sampler_name":"DPM++ 2M Karras","batch_size":2})", kJson);
  ASSERT_EQ(r->status, 200) << r->body;
  auto j = json::parse(r->body);
  ASSERT_EQ(j["images"].size(), 2u);
  EXPECT_TRUE(j["parameters"].is_object());
  ASSERT_TRUE(j["info"].is_string());
  auto info = json::parse(j["info"].get<std::string>());
  EXPECT_EQ(info["all_seeds"], json::array({11, 12}));
  EXPECT_NE(info["infotexts"][0].get<std::string>().find("Sampler: DPM++ 2M Karras"), std::string::npos);
  EXPECT_NE(read_png_parameters(*server::base64_decode(j["images"][0])).find("Seed: 11"), std::string::npos);
  json img = {{"init_images", {server::base64_encode(tiny_png())}}, {"prompt", "a dog"}, {"steps", 4},
              {"denoising_strength", 0.5}, {"mask", server::base64_encode(mask_png())}, {"mask_blur", 2}};
  r = c.Post("/sdapi/v1/img2img", img.dump(), kJson);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_NE(json::parse(json::parse(r->body)["info"].get<std::string>())["infotexts"][0].get<std::string>().find("Denoising strength: 0.5"),
            std::string::npos);
  r = c.Post("/sdapi/v1/img2img", R"({"prompt":"x"})", kJson);
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(json::parse(r->body)["detail"], "Init image not found");
  EXPECT_EQ(body_of(c.Get("/sdapi/v1/progress"))["state"]["job_count"], 0);
  EXPECT_EQ(body_of(c.Post("/sdapi/v1/interrupt", "", kJson)), json::object());
  EXPECT_EQ(body_of(c.Get("/sdapi/v1/options"))["sd_model_checkpoint"], "sd1-tiny");
  EXPECT_EQ(c.Post("/sdapi/v1/options", R"({"sd_model_checkpoint":"sd1-tiny"})", kJson)->status, 200);
  EXPECT_EQ(c.Post("/sdapi/v1/options", R"({"sd_model_checkpoint":"../x"})", kJson)->status, 400);
  EXPECT_EQ(body_of(c.Get("/sdapi/v1/sd-models"))[0]["title"], "sd1-tiny");
  auto samplers = body_of(c.Get("/sdapi/v1/samplers"));
  EXPECT_TRUE(std::any_of(samplers.begin(), samplers.end(), [](const json& x) { return x["name"] == "Euler a"; }));
  EXPECT_FALSE(body_of(c.Get("/sdapi/v1/schedulers")).empty());
}

TEST(Server, A1111PngInfoReadsGeneratedImage) {
  auto s = start();
  auto c = s.client();
  auto r = c.Post("/sdapi/v1/txt2img", R"({"prompt":"a cat, in a hat","negative_prompt":"blurry","steps":3,"width":64,"height":64,"seed":77})",
                  kJson);
  ASSERT_EQ(r->status, 200) << r->body;
  const std::string image = json::parse(r->body)["images"][0];
  auto info = body_of(c.Post("/sdapi/v1/png-info", json{{"image", "data:image/png;base64," + image}}.dump(), kJson));
  EXPECT_EQ(info["info"], read_png_parameters(*server::base64_decode(image)));
  EXPECT_TRUE(info["items"].is_object());
  const json& p = info["parameters"];
  EXPECT_EQ(p["Prompt"], "a cat, in a hat");
  EXPECT_EQ(p["Negative prompt"], "blurry");
  EXPECT_EQ(p["Seed"], "77");
  EXPECT_EQ(p["Steps"], "3");
  EXPECT_EQ(p["Size-1"], "64");
  EXPECT_EQ(p["Model"], "sd1-tiny");
  auto bad = c.Post("/sdapi/v1/png-info", R"({"image":"not base64!"})", kJson);
  EXPECT_EQ(bad->status, 400);
  EXPECT_NE(json::parse(bad->body)["detail"].get<std::string>().find("'image'"), std::string::npos);
}

TEST(Server, TwentyConcurrentClientsGetTheirOwnImages) {
  server::ServerOptions o;
  o.max_queue = 32;
  auto s = start(o);
  std::vector<std::future<std::pair<int, json>>> fs;
  for (int i = 0; i < 20; ++i)
    fs.push_back(std::async(std::launch::async, [&, i] {
      // connects are spread over 200 ms (the listen backlog is 5); the
      // requests still overlap, each one waits seconds in the queue
      std::this_thread::sleep_for(std::chrono::milliseconds(10 * i));
      auto c = s.client();
      json req = {{"prompt", "a cat"}, {"steps", 2}, {"seed", 100 + i}, {"width", 64}, {"height", 64}};
      auto r = c.Post("/generate", req.dump(), kJson);
      return std::make_pair(i, r ? json::parse(r->body) : json{{"transport_error", httplib::to_string(r.error())}});
    }));
  auto c = s.client();
  auto ref = body_of(c.Post("/generate", R"({"prompt":"a cat","steps":2,"seed":107,"width":64,"height":64})", kJson));
  for (auto& f : fs) {
    auto [i, j] = f.get();
    ASSERT_TRUE(j.contains("images")) << j.dump();
    EXPECT_EQ(j["images"][0]["seed"], 100 + i);
    if (i == 7) EXPECT_EQ(j["images"][0]["b64_json"], ref["images"][0]["b64_json"]);  // same seed, same pixels
  }
}

TEST(Server, AuthCorsAndLimits) {
  server::ServerOptions bad;
  bad.host = "0.0.0.0";
  auto refused = server::Server::create(bad);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("API key"), std::string::npos);
  server::ServerOptions o;
  o.api_keys = {"s3cret"};
  o.cors_origins = {"http://ok.example"};
  o.max_body_bytes = 4096;
  auto s = start(o);
  auto c = s.client();
  auto r = c.Get("/v1/models");
  EXPECT_EQ(r->status, 401);
  EXPECT_EQ(json::parse(r->body)["error"]["type"], "authentication_error");
  c.set_bearer_token_auth("wrong");
  EXPECT_EQ(c.Get("/v1/models")->status, 401);
  c.set_bearer_token_auth("s3cret");
  EXPECT_EQ(c.Get("/v1/models")->status, 200);
  EXPECT_EQ(c.Get("/")->status, 200);  // the page itself is public; its calls carry the key
  httplib::Headers ok = {{"Origin", "http://ok.example"}};
  r = c.Get("/v1/models", ok);
  EXPECT_EQ(r->get_header_value("Access-Control-Allow-Origin"), "http://ok.example");
  r = c.Get("/v1/models", {{"Origin", "http://evil.example"}});
  EXPECT_FALSE(r->has_header("Access-Control-Allow-Origin"));
  EXPECT_EQ(c.Options("/v1/jobs", ok)->status, 204);
  EXPECT_EQ(c.Options("/v1/jobs", {{"Origin", "http://evil.example"}})->status, 403);
  r = c.Post("/v1/jobs", std::string(8192, ' '), kJson);
  EXPECT_EQ(r->status, 413);
  httplib::Client basic("127.0.0.1", s.port);
  basic.set_basic_auth("user", "s3cret");
  EXPECT_EQ(basic.Get("/sdapi/v1/sd-models")->status, 200);
}

TEST(Server, GracefulShutdownWithAJobRunning) {
  auto s = start();
  auto c = s.client();
  const std::string id = json::parse(c.Post("/v1/jobs", R"({"prompt":"a","steps":800,"width":64,"height":64})", kJson)->body)["id"];
  for (int i = 0; i < 200 && body_of(c.Get("/v1/jobs/" + id))["status"] != "running"; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  auto t0 = std::chrono::steady_clock::now();
  s.srv->stop(true);
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 10.0);
  EXPECT_FALSE(c.Get("/v1/models"));  // no longer listening
}

}  // namespace
}  // namespace vg

namespace vg {
namespace {

TEST(Server, ModelsDirServesOnlyWhatIsInside) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::path(testing::TempDir()) / "vg_models_dir";
  fs::remove_all(dir);
  fs::create_directories(dir);
  fs::copy(test::tiny_model(), dir / "inside", fs::copy_options::recursive);
  fs::create_directory_symlink(test::tiny_model(), dir / "escape");  // points outside the directory
  server::ServerOptions o;
  o.models_dirs = {dir.string()};
  auto s = start(o);
  auto c = s.client();
  auto ids = body_of(c.Get("/v1/models"))["data"];
  std::vector<std::string> names;
  for (auto& m : ids) names.push_back(m["id"]);
  EXPECT_NE(std::find(names.begin(), names.end(), "inside"), names.end());
  EXPECT_EQ(std::find(names.begin(), names.end(), "escape"), names.end());
  auto r = c.Post("/v1/jobs", R"({"prompt":"x","steps":1,"model":"inside","width":64,"height":64})", kJson);
  EXPECT_EQ(r->status, 202) << r->body;
  EXPECT_EQ(c.Post("/v1/jobs", R"({"prompt":"x","model":"escape"})", kJson)->status, 404);
  EXPECT_EQ(c.Post("/v1/jobs", R"({"prompt":"x","model":"/etc"})", kJson)->status, 400);
  const int enc = c.Post("/v1/models/..%2F..%2Fetc/load", "", kJson)->status;  // decoded to a path: no such route
  EXPECT_TRUE(enc == 400 || enc == 404) << enc;
  EXPECT_EQ(c.Post("/v1/models/..%2E/load", "", kJson)->status, 400);
  s.srv->stop(true);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace vg
