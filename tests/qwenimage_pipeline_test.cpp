// Whole Qwen-Image pipelines vs diffusers 0.40 (qwenimage-tiny): every case of
// the manifest through the engine (presets off, the same seeds): final latents
// <= 1e-3 relative, images within 1/255 on >= 99 % of values; the ComfyUI
// single file gives the folder's image; bad components are clear errors.
#include <cstring>
#include <filesystem>

#include "io/safetensors.h"
#include "io/image_decode.h"
#include "models/dit_blocks.h"
#include "pipelines/latent_packing.h"
#include "pipelines/qwenimage_model.h"
#include "test_util.h"

namespace vg {
namespace {

std::string root() { return test::fixtures() + "/qwenimage-tiny"; }
std::string folder() { return root() + "/models/qwenimage-tiny"; }

GenerateParams params_of(const nlohmann::json& c) {
  const auto& k = c["call_kwargs"];
  GenerateParams p;
  p.prompt = k["prompt"].get<std::string>();
  p.negative_prompt = k.value("negative_prompt", std::string());
  p.width = k["width"];
  p.height = k["height"];
  p.steps = k["num_inference_steps"];
  p.seed = test::manual_seed_of(k["generator"]);
  p.cfg_scale = k.value("true_cfg_scale", 4.0f);  // the pipeline's default
  p.sampler = c["scheduler_class"] == "FlowMatchLCMScheduler" ? "lcm" : "euler";
  if (k.contains("strength")) p.strength = k["strength"];
  return p;
}

std::unique_ptr<FamilyEngine> engine(const std::string& path, const LoadOptions& lo = {}) {
  return make_qwenimage_engine(load_qwenimage_model(path, lo, false), lo);
}

TEST(QwenImagePipeline, EveryFixtureCaseMatchesDiffusers) {
  auto eng = engine(folder());
  int cases = 0;
  for (const auto& c : test::fixture_manifest("qwenimage-tiny")["pipelines"]) {
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
    const Tensor pe = ref->load_f32("prompt_embeds");
    // the encoder's output as the fixture stores it, before the cut to max_sequence_length (512)
    const int64_t rows = std::min<int64_t>(pe.dim(1), 512);
    EXPECT_EQ(trace.context.dim(1), rows);
    EXPECT_LE(test::rel_err(trace.context, slice_tokens(pe, 0, rows)), 1e-4) << "prompt_embeds";
    const Tensor& x = trace.final_latents;  // NHWC; the reference is packed
    const double lat = test::rel_err(pack_latents_2x2(x).reshape({1, x.dim(1) * x.dim(2) / 4, 4 * x.dim(3)}),
                                     ref->load_f32("latents_final").reshape({1, x.dim(1) * x.dim(2) / 4, 4 * x.dim(3)}));
    EXPECT_LE(lat, 1e-3);
    const Tensor want = ref->load_f32("image");
    const double px = test::frac_within(test::image01(r.images[0]), want.reshape({1, 3, want.dim(-2), want.dim(-1)}),
                                        1.0 / 255 + 1e-6);
    EXPECT_GE(px, 0.99);
    const bool truncated = name.rfind("long_prompt", 0) == 0;
    bool warned = false;
    for (const auto& w : r.warnings) warned |= w.find("as diffusers truncates") != std::string::npos;
    EXPECT_EQ(warned, truncated);
    std::printf("  %-36s latents rel %.2e, pixels within 1/255 %.4f\n", name.c_str(), lat, px);
    ++cases;
  }
  EXPECT_EQ(cases, 8);
}

// The transformer alone on the long-prompt case's recorded calls (1024 text tokens).
TEST(QwenImagePipeline, LongTextTransformerCallsMatch) {
  auto ref = SafetensorsFile::open(root() + "/pipelines/long_prompt_nocfg_4s_64x64.safetensors");
  const WeightStore w = open_component_weights(folder() + "/transformer", "transformer");
  const QwenImageTransformer model(QwenImageConfig::from_json_file(folder() + "/transformer/config.json"), w);
  const Tensor hs = ref->load_f32("transformer_calls.hidden_states"), out = ref->load_f32("transformer_calls.out");
  const Tensor ehs = ref->load_f32("transformer_calls.encoder_hidden_states"), ts = ref->load_f32("transformer_calls.timestep");
  ASSERT_EQ(ehs.dim(2), 512);  // the pipeline's max_sequence_length cut
  const int64_t s = hs.dim(2), f = hs.dim(3), t = ehs.dim(2), d = ehs.dim(3);
  for (int64_t c = 0; c < hs.dim(0); ++c) {
    Tensor img({1, s, f}), txt({1, t, d});
    std::memcpy(img.data(), hs.data() + c * s * f, s * f * 4);
    std::memcpy(txt.data(), ehs.data() + c * t * d, t * d * 4);
    Tensor want({1, s, out.dim(3)});
    std::memcpy(want.data(), out.data() + c * s * out.dim(3), want.numel() * 4);
    const Tensor got = model.forward(img, txt, ts.data()[c], 4, 4);
    EXPECT_LE(test::rel_err(got, want), 1e-4) << "call " << c;
  }
}

GenerateParams small_request() {
  GenerateParams p;
  p.prompt = "a sign that says hello";
  p.negative_prompt = " ";
  p.cfg_scale = 4.0f;
  p.width = p.height = 64;
  p.steps = 2;
  p.seed = 3;
  return p;
}

// ComfyUI's split files: the single-file transformer with the folder's text
// encoder, tokenizer and VAE given one by one, give the folder's image.
TEST(QwenImagePipeline, SingleFileTransformerGivesTheFolderImage) {
  const GenerateParams p = small_request();
  const auto a = engine(folder())->generate(p, {}, nullptr);
  LoadOptions lo;
  lo.text_encoder = folder() + "/text_encoder";
  lo.tokenizer_dir = folder() + "/tokenizer";
  lo.vae_file = folder() + "/vae";
  lo.config_dir = folder();
  const auto b = engine(root() + "/models/qwen_image_tiny_bf16.safetensors", lo)->generate(p, {}, nullptr);
  EXPECT_EQ(a.images[0].pixels, b.images[0].pixels);
}

TEST(QwenImagePipeline, BadComponentsAndRequestsAreClearErrors) {
  // Z-Image's Qwen3 encoder (q/k norms, same width here) is the wrong family
  LoadOptions wrong;
  wrong.text_encoder = test::fixtures() + "/zimage-tiny/models/zimage-tiny/text_encoder";
  EXPECT_EQ(test::code_of([&] { load_qwenimage_model(folder(), wrong, false); }), ErrorCode::kShapeMismatch);
  // the transformer alone finds no text encoder
  EXPECT_EQ(test::code_of([&] { load_qwenimage_model(root() + "/models/qwen_image_tiny_bf16.safetensors", {}, false); }),
            ErrorCode::kMissingComponent);
  // more text tokens than the pipeline allows
  auto eng = engine(folder());
  GenerateParams p = small_request();
  p.max_sequence_length = 2048;
  EXPECT_EQ(eng->validate(p, {}).error().code, ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace vg
