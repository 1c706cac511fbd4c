// FLUX and SD3 through the HTTP server (native, A1111 and OpenAI endpoints),
// the real server on loopback with the tiny fixture models.
#include <httplib.h>

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
const char* kJson = "application/json";

std::string flux_models() { return test::fixtures() + "/flux-tiny/models"; }
std::string sd3_model() { return test::fixtures() + "/sd3-tiny/models/sd3-tiny"; }

test::RunningServer start(server::ServerOptions o) {
  o.precision = "fp32";
  return test::start_server(o, 120);
}

json post(httplib::Client& c, const std::string& path, const json& body) {
  auto r = c.Post(path, body.dump(), kJson);
  EXPECT_TRUE(r);
  if (!r) return json();
  EXPECT_EQ(r->status, 200) << r->body;
  return json::parse(r->body);
}

Image png_of(const std::string& b64) {
  auto bytes = server::base64_decode(b64);
  EXPECT_TRUE(bytes);
  return decode_png(bytes ? *bytes : "", "response");
}

// The image the library makes for these parameters (what every endpoint must give).
Image direct(const std::string& model, const GenerateParams& p, const LoadOptions& lo = {}) {
  LoadOptions l = lo;
  l.precision = "fp32";
  l.threads = 2;
  auto e = Engine::load(model, l);
  EXPECT_TRUE(e) << e.error().to_string();
  auto r = (*e)->generate(p);
  EXPECT_TRUE(r) << r.error().to_string();
  return r->images.at(0);
}

double frac_same(const Image& a, const Image& b) {
  EXPECT_EQ(a.pixels.size(), b.pixels.size());
  if (a.pixels.size() != b.pixels.size()) return 0;
  return test::frac_within(test::image01(a), test::image01(b), 1.0 / 255 + 1e-6);
}

GenerateParams flux_dev_defaults(float guidance) {
  GenerateParams p;  // what flux-dev's preset fills, with the request's fields
  p.prompt = "a red fox";
  p.width = p.height = 64;
  p.steps = 2;
  p.seed = 3;
  p.cfg_scale = 1;
  p.guidance = guidance;
  p.max_sequence_length = 512;
  return p;
}

TEST(ServerDit, FluxDevOnNativeA1111AndOpenAiEndpoints) {
  server::ServerOptions o;
  o.default_model = flux_models() + "/flux-tiny-dev";
  o.models_dirs = {flux_models()};
  auto s = start(o);
  auto c = s.client();
  // family, controls and preset defaults for the UI
  json d = post(c, "/v1/models/flux-tiny-dev/load", json::object());
  EXPECT_EQ(d["family"], "flux");
  EXPECT_EQ(d["variant"], "flux-dev");
  EXPECT_EQ(d["size_multiple"], 16);
  EXPECT_TRUE(d["controls"]["guidance"].get<bool>());
  EXPECT_FALSE(d["controls"]["clip_skip"].get<bool>());
  EXPECT_EQ(d["controls"]["cfg_label"], "true CFG");
  EXPECT_EQ(d["defaults"]["steps"], 28);
  EXPECT_EQ(d["defaults"]["cfg_scale"], 1.0);
  EXPECT_EQ(d["defaults"]["guidance"], 3.5);
  EXPECT_EQ(json::parse(c.Get("/v1/capabilities")->body)["model_details"]["flux-tiny-dev"]["variant"],
            "flux-dev");
  json sch = post(c, "/v1/models/flux-tiny-schnell/load", json::object());
  EXPECT_EQ(sch["variant"], "flux-schnell");
  EXPECT_FALSE(sch["controls"]["guidance"].get<bool>());
  EXPECT_EQ(sch["defaults"]["steps"], 4);

  const Image want = direct(o.default_model, flux_dev_defaults(3.5f));
  // native: the preset fills cfg 1 and guidance 3.5
  json n = post(c, "/generate",
                {{"prompt", "a red fox"}, {"width", 64}, {"height", 64}, {"steps", 2}, {"seed", 3}});
  ASSERT_EQ(n["images"].size(), 1u);
  EXPECT_NE(n["images"][0]["infotext"].get<std::string>().find("Guidance: 3.5"), std::string::npos);
  EXPECT_EQ(n["result"]["applied_preset_patch"]["guidance"], 3.5);
  const Image native = png_of(n["images"][0]["b64_json"]);
  EXPECT_EQ(native.width, 64);
  EXPECT_GE(frac_same(native, want), 0.999);

  // OpenAI images.generate: same request, same image
  json oa = post(
      c, "/v1/images/generations",
      {{"model", "flux-tiny-dev"}, {"prompt", "a red fox"}, {"size", "64x64"}, {"steps", 2}, {"seed", 3}});
  ASSERT_EQ(oa["data"].size(), 1u);
  EXPECT_GE(frac_same(png_of(oa["data"][0]["b64_json"]), want), 0.999);

  // A1111/Forge txt2img: distilled_cfg_scale is FLUX's guidance
  json a = post(c, "/sdapi/v1/txt2img",
                {{"prompt", "a red fox"},
                 {"width", 64},
                 {"height", 64},
                 {"steps", 2},
                 {"seed", 3},
                 {"distilled_cfg_scale", 6.0}});
  ASSERT_EQ(a["images"].size(), 1u);
  const json info = json::parse(a["info"].get<std::string>());
  EXPECT_EQ(info["distilled_cfg_scale"], 6.0);
  EXPECT_EQ(info["cfg_scale"], 1.0);  // the preset's, not A1111's SD default 7
  EXPECT_EQ(info["steps"], 2);
  EXPECT_NE(info["infotexts"][0].get<std::string>().find("Guidance: 6"), std::string::npos);
  auto opts = c.Get("/sdapi/v1/options");
  ASSERT_TRUE(opts);
  EXPECT_EQ(json::parse(opts->body)["forge_preset"], "flux");  // how Forge clients recognise Forge
  const Image forge = png_of(a["images"][0]);
  EXPECT_GE(frac_same(forge, direct(o.default_model, flux_dev_defaults(6.0f))), 0.999);
  EXPECT_LT(frac_same(forge, want), 0.9);  // the guidance changed the image
}

TEST(ServerDit, ServeComponentFlagsLoadBflSingleFiles) {
  server::ServerOptions o;
  o.default_model = flux_models() + "/flux1-tiny-dev.safetensors";
  o.components.clip_l = flux_models() + "/flux-tiny-dev/text_encoder";
  o.components.t5 = flux_models() + "/flux-tiny-dev/text_encoder_2";
  o.components.vae_file = flux_models() + "/ae-tiny.safetensors";
  o.components.config_dir = flux_models() + "/flux-tiny-dev";
  auto s = start(o);
  auto c = s.client();
  json n = post(c, "/generate",
                {{"prompt", "a red fox"}, {"width", 64}, {"height", 64}, {"steps", 2}, {"seed", 3}});
  EXPECT_EQ(n["model"], "flux1-tiny-dev");
  ASSERT_EQ(n["images"].size(), 1u);
  EXPECT_GE(frac_same(png_of(n["images"][0]["b64_json"]),
                      direct(flux_models() + "/flux-tiny-dev", flux_dev_defaults(3.5f))),
            0.999);
  // without the components the same file is refused with the code that says so
  server::ServerOptions bare;
  bare.default_model = o.default_model;
  auto s2 = start(bare);
  auto c2 = s2.client();
  auto r = c2.Post("/generate", R"({"prompt":"x","width":64,"height":64,"steps":1})", kJson);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 422) << r->body;
  EXPECT_EQ(json::parse(r->body)["error"]["code"], "missing_component");
}

TEST(ServerDit, Sd3WithSkipLayersOnNativeGenerate) {
  server::ServerOptions o;
  o.default_model = sd3_model();
  auto s = start(o);
  auto c = s.client();
  json d = post(c, "/v1/models/sd3-tiny/load", json::object());
  EXPECT_EQ(d["family"], "sd3");
  EXPECT_TRUE(d["controls"]["skip_layers"].get<bool>());
  EXPECT_FALSE(d["controls"]["guidance"].get<bool>());
  EXPECT_EQ(d["defaults"]["cfg_scale"], 7.0);
  json n = post(c, "/generate",
                {{"prompt", "a red fox"},
                 {"width", 64},
                 {"height", 64},
                 {"steps", 2},
                 {"seed", 3},
                 {"cfg_scale", 4},
                 {"skip_layers", "1"},
                 {"skip_layer_start", 0.0},
                 {"skip_layer_stop", 1.0}});
  ASSERT_EQ(n["images"].size(), 1u);
  EXPECT_NE(n["images"][0]["infotext"].get<std::string>().find("Skip layers: 1"), std::string::npos);
  GenerateParams p;
  p.prompt = "a red fox";
  p.width = p.height = 64;
  p.steps = 2;
  p.seed = 3;
  p.cfg_scale = 4;
  p.skip_layers = "1";
  p.skip_layer_start = 0;
  p.skip_layer_stop = 1;
  p.max_sequence_length = 256;
  EXPECT_GE(frac_same(png_of(n["images"][0]["b64_json"]), direct(sd3_model(), p)), 0.999);
  // a block the transformer lacks is refused before queueing, naming the field's problem
  auto r =
      c.Post("/generate", R"({"prompt":"x","width":64,"height":64,"steps":1,"skip_layers":"99"})", kJson);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(r->body.find("skip layer 99"), std::string::npos) << r->body;
}

// `generate` and `serve` take the same component flags (one definition).
TEST(ServerDit, GenerateAndServeShareTheComponentFlags) {
  const std::string help = test::run_cli("serve --help").out;
  for (const char* f :
       {"--transformer", "--clip-l", "--clip-g", "--t5", "--text-encoder-3", "--vae", "--config", "--no-t5"})
    EXPECT_NE(help.find(f), std::string::npos) << f;
  const std::string out = testing::TempDir() + "/vg_dit_cli.png";
  std::remove(out.c_str());
  const std::string m = flux_models();
  auto r = test::run_cli("generate -q -p fox -m " + m + "/flux1-tiny-dev.safetensors --clip-l " + m +
                         "/flux-tiny-dev/text_encoder --t5 " + m + "/flux-tiny-dev/text_encoder_2 --vae " +
                         m + "/ae-tiny.safetensors --config " + m +
                         "/flux-tiny-dev -W 64 -H 64 --steps 1 --precision fp32 -o " + out);
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_TRUE(path_exists(out));
  r = test::run_cli("generate -q -p fox -m " + m + "/flux1-tiny-dev.safetensors -W 64 -H 64 --steps 1 -o " +
                    out + ".2.png");
  EXPECT_EQ(r.code, 10 + static_cast<int>(ErrorCode::kMissingComponent)) << r.out;
  EXPECT_NE(r.out.find("missing_component"), std::string::npos) << r.out;
  std::remove(out.c_str());
}

}  // namespace
}  // namespace vg

namespace vg {
namespace {

// Qwen-Image through the OpenAI endpoint: a text-heavy prompt with true CFG
// (true_cfg_scale + negative_prompt) gives the library's image; the model's
// details name the variant and the true-CFG control.
TEST(ServerDit, QwenImageAndZImageOnOpenAi) {
  const std::string qwen = test::fixtures() + "/qwenimage-tiny/models/qwenimage-tiny";
  const std::string zimage = test::fixtures() + "/zimage-tiny/models/zimage-tiny";
  server::ServerOptions o;
  o.default_model = qwen;
  o.models_dirs = {test::fixtures() + "/qwenimage-tiny/models", test::fixtures() + "/zimage-tiny/models"};
  auto s = start(o);
  auto c = s.client();
  json d = post(c, "/v1/models/qwenimage-tiny/load", json::object());
  EXPECT_EQ(d["family"], "qwenimage");
  EXPECT_EQ(d["variant"], "qwen-image");
  EXPECT_EQ(d["controls"]["cfg_label"], "true CFG");
  EXPECT_TRUE(d["controls"]["negative_prompt_needs_cfg"].get<bool>());
  EXPECT_EQ(d["defaults"]["steps"], 50);
  const std::string text = "a neon sign that reads \"OPEN 24 HOURS\" above a shop door, with a chalkboard menu";
  GenerateParams p;
  p.prompt = text;
  p.negative_prompt = " ";
  p.cfg_scale = 4.0f;
  p.width = p.height = 64;
  p.steps = 3;
  p.seed = 5;
  const Image want = direct(qwen, p);
  json oa = post(c, "/v1/images/generations",
                 {{"model", "qwenimage-tiny"}, {"prompt", text}, {"size", "64x64"}, {"steps", 3}, {"seed", 5},
                  {"negative_prompt", " "}, {"true_cfg_scale", 4.0}});
  ASSERT_EQ(oa["data"].size(), 1u);
  EXPECT_GE(frac_same(png_of(oa["data"][0]["b64_json"]), want), 0.999);
  // Z-Image: guidance_scale is diffusers' g, our cfg_scale 1 + g
  GenerateParams z;
  z.prompt = "a red fox";
  z.negative_prompt = "blurry";
  z.cfg_scale = 3.0f;
  z.width = z.height = 64;
  z.steps = 2;
  z.seed = 7;
  json oz = post(c, "/v1/images/generations",
                 {{"model", "zimage-tiny"}, {"prompt", "a red fox"}, {"size", "64x64"}, {"steps", 2}, {"seed", 7},
                  {"negative_prompt", "blurry"}, {"guidance_scale", 2.0}});
  ASSERT_EQ(oz["data"].size(), 1u);
  EXPECT_GE(frac_same(png_of(oz["data"][0]["b64_json"]), direct(zimage, z)), 0.999);
}

// The CLI with ComfyUI-style split files: -m a folder or --transformer FILE
// with --text-encoder / --vae / --tokenizer, for both families; the same
// request through the library gives the same image.
TEST(ServerDit, CliRunsZImageAndQwenImageFromSplitFiles) {
  struct Case {
    std::string root, folder, single;
  };
  const std::string fx = test::fixtures();
  const Case cases[] = {{fx + "/zimage-tiny/models", "zimage-tiny", "z_image_turbo_tiny_bf16.safetensors"},
                        {fx + "/qwenimage-tiny/models", "qwenimage-tiny", "qwen_image_tiny_bf16.safetensors"}};
  for (const Case& c : cases) {
    SCOPED_TRACE(c.folder);
    const std::string f = c.root + "/" + c.folder, out = testing::TempDir() + "/vg_" + c.folder + ".png";
    std::remove(out.c_str());
    auto r = test::run_cli("generate -q -p \"a shop sign that says OPEN\" -n \" \" --cfg-scale 3 -m " + f +
                           " --transformer " + c.root + "/" + c.single + " --text-encoder " + f + "/text_encoder --vae " +
                           f + "/vae --tokenizer " + f + "/tokenizer -W 64 -H 64 --steps 2 --seed 9 --precision fp32 -o " +
                           out);
    ASSERT_EQ(r.code, 0) << r.out;
    GenerateParams p;
    p.prompt = "a shop sign that says OPEN";
    p.negative_prompt = " ";
    p.cfg_scale = 3;
    p.width = p.height = 64;
    p.steps = 2;
    p.seed = 9;
    p.max_sequence_length = 512;  // what the presets fill
    EXPECT_GE(frac_same(decode_png(read_file(out), out), direct(f, p)), 0.999);
    std::remove(out.c_str());
  }
}

}  // namespace
}  // namespace vg
