// Whole Z-Image pipelines vs diffusers 0.40 (zimage-tiny): every case of the
// manifest through the engine (presets off, the same seeds): final latents
// <= 1e-3 relative, images within 1/255 on >= 99 % of values; the original
// single-file transformer gives the folder's image; bad inputs are clear errors.
#include <cstring>
#include <filesystem>
#include <regex>

#include "backend/cpu/ops.h"
#include "io/image_decode.h"
#include "io/safetensors.h"
#include "pipelines/qwen_components.h"
#include "pipelines/zimage_model.h"
#include "gguf_util.h"
#include "test_util.h"

namespace vg {
namespace {

std::string root() { return test::fixtures() + "/zimage-tiny"; }
std::string folder() { return root() + "/models/zimage-tiny"; }

GenerateParams params_of(const nlohmann::json& c) {
  const auto& k = c["call_kwargs"];
  GenerateParams p;
  p.prompt = k["prompt"].get<std::string>();
  p.negative_prompt = k.value("negative_prompt", std::string());
  p.width = k["width"];
  p.height = k["height"];
  p.steps = k["num_inference_steps"];
  p.seed = test::manual_seed_of(k["generator"]);
  p.cfg_scale = 1.0f + k["guidance_scale"].get<float>();  // diffusers' g is our cfg_scale - 1
  p.sampler = c["scheduler_class"] == "FlowMatchLCMScheduler" ? "lcm" : "euler";
  if (k.contains("strength")) p.strength = k["strength"];
  return p;
}

std::unique_ptr<FamilyEngine> engine(const std::string& path, const LoadOptions& lo = {}) {
  return make_zimage_engine(load_zimage_model(path, lo, false), lo);
}

TEST(ZImagePipeline, EveryFixtureCaseMatchesDiffusers) {
  auto eng = engine(folder());
  int cases = 0;
  for (const auto& c : test::fixture_manifest("zimage-tiny")["pipelines"]) {
    const std::string name = c["name"];
    SCOPED_TRACE(name);
    const GenerateParams p = params_of(c);
    ImageInputs in;
    Image init;
    if (c["call_kwargs"].contains("image")) {
      init = read_image_file(root() + "/inputs/test_image_64.png");
      in.init_image = &init;
    }
    EngineTrace trace;
    eng->set_trace(&trace);
    ASSERT_TRUE(eng->validate(p, in).ok()) << eng->validate(p, in).error().message;
    GenerateResult r = eng->generate(p, in, nullptr);
    auto ref = SafetensorsFile::open(root() + "/" + c["files"]["safetensors"].get<std::string>());
    const double lat = test::rel_err(nhwc_to_nchw(trace.final_latents), ref->load_f32("latents_final"));
    EXPECT_LE(lat, 1e-3);
    const double px = test::frac_within(test::image01(r.images[0]), ref->load_f32("image"), 1.0 / 255 + 1e-6);
    EXPECT_GE(px, 0.99);
    const bool truncated = name.rfind("long_prompt", 0) == 0;
    bool warned = false;
    for (const auto& w : r.warnings) warned |= w.find("--max-sequence-length") != std::string::npos;
    EXPECT_EQ(warned, truncated);
    std::printf("  %-36s latents rel %.2e, pixels within 1/255 %.4f\n", name.c_str(), lat, px);
    ++cases;
  }
  EXPECT_EQ(cases, 8);
}

GenerateParams small_request() {
  GenerateParams p;
  p.prompt = "a red fox";
  p.width = p.height = 64;
  p.steps = 2;
  p.seed = 3;
  return p;
}

// ComfyUI's split files: the original-layout transformer with the folder's
// text encoder, tokenizer and VAE given one by one, give the folder's image.
TEST(ZImagePipeline, SingleFileTransformerGivesTheFolderImage) {
  const GenerateParams p = small_request();
  const auto a = engine(folder())->generate(p, {}, nullptr);
  LoadOptions lo;
  lo.text_encoder = folder() + "/text_encoder";
  lo.tokenizer_dir = folder() + "/tokenizer";
  lo.vae_file = folder() + "/vae";
  const auto b = engine(root() + "/models/z_image_turbo_tiny_bf16.safetensors", lo)->generate(p, {}, nullptr);
  ASSERT_EQ(a.images[0].pixels.size(), b.images[0].pixels.size());
  EXPECT_EQ(a.images[0].pixels, b.images[0].pixels);
}

TEST(ZImagePipeline, BadComponentsAreClearErrors) {
  const std::string qwen_image = test::fixtures() + "/qwenimage-tiny/models/qwenimage-tiny";
  // a Qwen2.5-VL encoder (Qwen-Image's, same width here) is the wrong family
  LoadOptions wrong_family;
  wrong_family.text_encoder = qwen_image + "/text_encoder";
  EXPECT_EQ(test::code_of([&] { load_zimage_model(folder(), wrong_family, false); }), ErrorCode::kShapeMismatch);
  // a T5 encoder is not a Qwen model at all
  LoadOptions t5;
  t5.text_encoder = test::fixtures() + "/flux-tiny/models/flux-tiny-dev/text_encoder_2";
  EXPECT_NE(test::code_of([&] { load_zimage_model(folder(), t5, false); }), ErrorCode::kOk);
  // a tokenizer without the chat template Z-Image applies
  const std::string dir = testing::TempDir() + "/zimage_tok_no_template";
  std::filesystem::create_directories(dir);
  for (const char* f : {"vocab.json", "merges.txt"})
    std::filesystem::copy_file(folder() + "/tokenizer/" + f, dir + "/" + f, std::filesystem::copy_options::overwrite_existing);
  LoadOptions no_template;
  no_template.text_encoder = folder() + "/text_encoder";
  no_template.tokenizer_dir = dir;
  no_template.vae_file = folder() + "/vae";
  EXPECT_EQ(test::code_of([&] { load_zimage_model(root() + "/models/z_image_turbo_tiny_bf16.safetensors", no_template, false); }),
            ErrorCode::kInvalidArgument);
  // the single file alone: no text encoder found
  EXPECT_EQ(test::code_of([&] { load_zimage_model(root() + "/models/z_image_turbo_tiny_bf16.safetensors", {}, false); }),
            ErrorCode::kMissingComponent);
  std::filesystem::remove_all(dir);
}

using test::to_gguf;

// A GGUF transformer (original names) gives the folder's image; one holding a
// tensor Z-Image does not have is refused; a Qwen3 GGUF in llama.cpp names
// encodes like the folder's encoder.
TEST(ZImagePipeline, GgufTransformerAndTextEncoder) {
  const std::string dir = testing::TempDir() + "/zimage_gguf";
  std::filesystem::create_directories(dir);
  const std::string single = root() + "/models/z_image_turbo_tiny_bf16.safetensors";
  to_gguf(single, dir + "/z_image_turbo-F32.gguf", [](const std::string& n) { return n; });
  LoadOptions lo;
  lo.config_dir = folder();  // text encoder, tokenizer and VAE from the diffusers folder
  const GenerateParams p = small_request();
  const auto a = engine(folder())->generate(p, {}, nullptr);
  const auto b = engine(dir + "/z_image_turbo-F32.gguf", lo)->generate(p, {}, nullptr);
  EXPECT_EQ(a.images[0].pixels, b.images[0].pixels);
  to_gguf(single, dir + "/z_image_extra.gguf", [](const std::string& n) { return n; }, "layers.0.attention.extra.weight");
  EXPECT_EQ(test::code_of([&] { load_zimage_model(dir + "/z_image_extra.gguf", lo, false); }), ErrorCode::kUnsupportedModel);
  // Qwen3 in llama.cpp's names
  static const std::map<std::string, std::string> parts = {
      {"input_layernorm", "attn_norm"},    {"post_attention_layernorm", "ffn_norm"}, {"self_attn.q_proj", "attn_q"},
      {"self_attn.k_proj", "attn_k"},      {"self_attn.v_proj", "attn_v"},           {"self_attn.o_proj", "attn_output"},
      {"self_attn.q_norm", "attn_q_norm"}, {"self_attn.k_norm", "attn_k_norm"},      {"mlp.gate_proj", "ffn_gate"},
      {"mlp.up_proj", "ffn_up"},           {"mlp.down_proj", "ffn_down"}};
  to_gguf(folder() + "/text_encoder/model.safetensors", dir + "/qwen3-tiny.gguf", [](const std::string& n) -> std::string {
    std::smatch m;
    if (n == "embed_tokens.weight") return "token_embd.weight";
    if (n == "norm.weight") return "output_norm.weight";
    if (std::regex_match(n, m, std::regex(R"(layers\.(\d+)\.(.+)\.weight)"))) return "blk." + m[1].str() + "." + parts.at(m[2].str()) + ".weight";
    return n;
  });
  auto g = load_qwen_component({dir + "/qwen3-tiny.gguf", "", ""}, false, "text_encoder");
  auto f = load_qwen_component({folder() + "/text_encoder", "", ""}, false, "text_encoder");
  const std::vector<int32_t> ids{639, 1, 2, 3, 640};
  EXPECT_LE(test::rel_err(g->hidden_states(ids, 5, -2), f->hidden_states(ids, 5, -2)), 1e-6);
  EXPECT_EQ(g->config().num_kv_heads, f->config().num_kv_heads);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace vg
