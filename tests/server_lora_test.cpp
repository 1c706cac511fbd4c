// Server LoRAs: the native API's `loras` array, <lora:name:w> through sdapi,
// GET /v1/loras over the --lora-dir folders (loopback, the tiny SD1 model).
#include <httplib.h>

#include <map>

#include "io/image_decode.h"
#include "server/http_util.h"
#include "server/lora_list.h"
#include "server/server.h"
#include "server_util.h"
#include "test_util.h"

namespace vg {
namespace {

using nlohmann::json;

std::string lora_dir() { return test::fixtures() + "/sdxl-tiny/models/lora"; }

test::RunningServer start() {
  server::ServerOptions o;
  o.default_model = test::tiny_model();
  o.lora_dirs = {lora_dir()};
  return test::start_server(o);
}

const char* kJson = "application/json";

std::vector<uint8_t> pixels(const json& b64) {
  auto png = server::base64_decode(b64.get<std::string>());
  EXPECT_TRUE(png);
  return png ? decode_image(*png, "response").pixels : std::vector<uint8_t>{};
}

json generate(httplib::Client& c, const json& extra, const char* path = "/generate") {
  json req = {{"prompt", "a cat"}, {"steps", 2}, {"seed", 5}, {"width", 64}, {"height", 64}};
  for (auto it = extra.begin(); it != extra.end(); ++it) req[it.key()] = it.value();
  auto r = c.Post(path, req.dump(), kJson);
  EXPECT_TRUE(r);
  if (!r) return {};
  EXPECT_EQ(r->status, 200) << r->body;
  return json::parse(r->body);
}

TEST(ServerLora, JsonLorasChangeTheImageAndAreRecorded) {
  auto s = start();
  auto c = s.client();
  auto base = generate(c, json::object());
  auto with = generate(c, {{"loras", json::array({{{"name", "sd1_kohya_locon"}, {"weight", 0.8}}})}});
  auto as_string = generate(c, {{"loras", "sd1_kohya_locon:0.8"}});
  ASSERT_FALSE(base.is_null() || with.is_null() || as_string.is_null());
  const auto b = pixels(base["images"][0]["b64_json"]), w = pixels(with["images"][0]["b64_json"]);
  ASSERT_FALSE(b.empty());
  EXPECT_NE(b, w);
  EXPECT_EQ(w, pixels(as_string["images"][0]["b64_json"]));
  const std::string info = with["images"][0]["infotext"];
  EXPECT_NE(info.find("Lora hashes: \"sd1_kohya_locon:"), std::string::npos) << info;
  EXPECT_EQ(base["images"][0]["infotext"].get<std::string>().find("Lora hashes"), std::string::npos);
}

TEST(ServerLora, BadLorasValueIs400) {
  auto s = start();
  auto c = s.client();
  for (const char* bad :
       {R"({"prompt":"a","loras":5})", R"({"prompt":"a","loras":[{"weight":1}]})",
        R"({"prompt":"a","loras":[{"name":"x","weight":"high"}]})", R"({"prompt":"a","loras":["x"]})",
        R"({"prompt":"a","loras":[{"name":"x","strength":1}]})"}) {
    auto r = c.Post("/generate", bad, kJson);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 400) << bad << " -> " << r->body;
    EXPECT_NE(r->body.find("loras"), std::string::npos) << r->body;
  }
  EXPECT_EQ(server::loras_to_string(json::array({{{"name", "a"}, {"weight", -0.5}}, {{"name", "b"}}})),
            "a:-0.5,b:1");
}

TEST(ServerLora, SdapiPromptTagsApply) {
  auto s = start();
  auto c = s.client();
  auto tagged = generate(c, {{"prompt", "a cat <lora:sd1_kohya_locon:0.8>"}}, "/sdapi/v1/txt2img");
  auto plain = generate(c, json::object(), "/sdapi/v1/txt2img");
  ASSERT_FALSE(tagged.is_null() || plain.is_null());
  const auto t = pixels(tagged["images"][0]), p = pixels(plain["images"][0]);
  ASSERT_FALSE(t.empty());
  EXPECT_NE(t, p);
  EXPECT_NE(tagged["info"].get<std::string>().find("Lora hashes"), std::string::npos);
}

TEST(ServerLora, ListsTheLoraFolder) {
  auto s = start();
  auto c = s.client();
  auto r = c.Get("/v1/loras");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200);
  auto j = json::parse(r->body);
  std::map<std::string, json> by;
  for (auto& e : j["data"]) by[e["name"]] = e;
  ASSERT_TRUE(by.count("sd1_kohya_locon")) << r->body;
  ASSERT_TRUE(by.count("sdxl_peft"));
  EXPECT_EQ(by["sd1_kohya_locon"]["family"], "sd1");
  EXPECT_EQ(by["sdxl_kohya_locon"]["family"], "sdxl");
  EXPECT_EQ(by["sdxl_peft"]["family"], "sdxl");
  EXPECT_GT(by["sd1_peft"]["size_bytes"].get<int64_t>(), 0);
  EXPECT_EQ(j["data"].size(), 6u);
}

}  // namespace
}  // namespace vg
