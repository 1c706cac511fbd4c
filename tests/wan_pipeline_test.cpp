// Whole Wan 2.2 TI2V pipelines vs diffusers 0.40 (wan22-tiny): every case of
// the manifest (text- and image-to-video, frame counts, CFG on/off,
// non-square, UniPC and FlowMatchEuler) through the engine with the same
// seeds: final latents <= 1e-3 relative, every frame within 1/255 on >= 99 %
// of values; ComfyUI's split files give the folder's video; bad inputs are
// clear errors.
#include <filesystem>

#include "io/image_decode.h"
#include "io/safetensors.h"
#include "pipelines/wan_model.h"
#include "gguf_util.h"
#include "test_util.h"

namespace vg {
namespace {

std::string root() { return test::fixtures() + "/wan22-tiny"; }
std::string folder() { return root() + "/models/wan22-tiny-ti2v"; }

GenerateParams params_of(const nlohmann::json& c) {
  const auto& k = c["cli"];
  GenerateParams p;
  p.prompt = k["prompt"].get<std::string>();
  p.negative_prompt = k.value("negative_prompt", nlohmann::json()).is_string() ? k["negative_prompt"].get<std::string>() : "";
  p.width = k["width"];
  p.height = k["height"];
  p.frames = k["frames"];
  p.fps = k["fps"];
  p.steps = k["steps"];
  p.seed = k["seed"];
  p.cfg_scale = k["guidance"];
  p.sampler = k["sampler"];
  p.max_sequence_length = k["max_sequence_length"];
  return p;
}

std::unique_ptr<FamilyEngine> engine(const std::string& path, const LoadOptions& lo = {}) {
  return make_wan_engine(load_wan_model(path, lo, false), lo);
}

// [L,h,w,C] -> [1,C,L,h,w]
Tensor to_ncthw(const Tensor& x) {
  const int64_t l = x.dim(0), h = x.dim(1), w = x.dim(2), c = x.dim(3);
  Tensor out({1, c, l, h, w});
  for (int64_t i = 0; i < l * h * w; ++i)
    for (int64_t k = 0; k < c; ++k) out.data()[k * l * h * w + i] = x.data()[i * c + k];
  return out;
}

// The clip as [F,H,W,3] in [0,1].
Tensor frames01(const Video& v) {
  Tensor t({static_cast<int64_t>(v.frames.size()), v.height, v.width, 3});
  size_t o = 0;
  for (const Image& im : v.frames)
    for (uint8_t b : im.pixels) t.data()[o++] = b / 255.0f;
  return t;
}

TEST(WanPipeline, EveryFixtureCaseMatchesDiffusers) {
  auto eng = engine(folder());
  int cases = 0;
  for (const auto& c : test::fixture_manifest("wan22-tiny")["pipelines"]) {
    const std::string name = c["name"];
    SCOPED_TRACE(name);
    const GenerateParams p = params_of(c);
    ImageInputs in;
    Image init;
    if (c["cli"]["init_image"].is_string()) {
      init = read_image_file(root() + "/" + c["cli"]["init_image"].get<std::string>());
      in.init_image = &init;
    }
    EngineTrace trace;
    eng->set_trace(&trace);
    ASSERT_TRUE(eng->validate(p, in).ok()) << eng->validate(p, in).error().message;
    GenerateResult r = eng->generate(p, in, nullptr);
    auto ref = SafetensorsFile::open(root() + "/" + c["file"].get<std::string>());
    // image-to-video: the final latents with frame 0 put back to the image's latent
    const std::string final_name = ref->has("latents_final_blended") ? "latents_final_blended" : "latents_final";
    const double lat = test::rel_err(to_ncthw(trace.final_latents), ref->load_f32(final_name));
    EXPECT_LE(lat, 1e-3);
    ASSERT_EQ(r.videos.size(), 1u);
    const Video& v = r.videos[0];
    EXPECT_EQ(static_cast<int>(v.frames.size()), c["output_frames"].get<int>());
    EXPECT_EQ(v.fps, 24.0);
    const double px = test::frac_within(frames01(v), ref->load_f32("frames"), 1.0 / 255 + 1e-6);
    EXPECT_GE(px, 0.99);
    EXPECT_NE(r.infotext[0].find("Frames: " + std::to_string(v.frames.size())), std::string::npos) << r.infotext[0];
    std::printf("  %-42s latents rel %.2e, frame values within 1/255 %.4f\n", name.c_str(), lat, px);
    ++cases;
  }
  EXPECT_EQ(cases, 7);
}

GenerateParams small_request() {
  GenerateParams p;
  p.prompt = "a red fox runs";
  p.width = 64;
  p.height = 64;
  p.frames = 5;
  p.steps = 2;
  p.seed = 3;
  p.cfg_scale = 1.0f;
  p.sampler = "unipc";
  return p;
}

// ComfyUI's split files: the fp16 transformer with Wan's names and the VAE with
// Wan2.2_VAE.pth names, the text encoder and tokenizer from the folder.
TEST(WanPipeline, SingleFilesGiveTheFolderVideo) {
  const GenerateParams p = small_request();
  const auto a = engine(folder())->generate(p, {}, nullptr);
  LoadOptions lo;
  lo.text_encoder = folder() + "/text_encoder";
  lo.tokenizer_dir = folder() + "/tokenizer";
  lo.vae_file = root() + "/models/single_file/wan2.2_vae_tiny.safetensors";
  const auto b = engine(root() + "/models/single_file/wan2.2_ti2v_tiny_fp16.safetensors", lo)->generate(p, {}, nullptr);
  ASSERT_EQ(a.videos.size(), 1u);
  ASSERT_EQ(b.videos.size(), 1u);
  ASSERT_EQ(a.videos[0].frames.size(), b.videos[0].frames.size());
  for (size_t f = 0; f < a.videos[0].frames.size(); ++f) EXPECT_EQ(a.videos[0].frames[f].pixels, b.videos[0].frames[f].pixels) << f;
}

// city96-style GGUF of the transformer (original Wan names) gives the folder's
// video; one holding a tensor Wan does not have is refused.
TEST(WanPipeline, GgufTransformerGivesTheFolderVideo) {
  const std::string dir = testing::TempDir() + "/wan_gguf";
  std::filesystem::create_directories(dir);
  const std::string single = root() + "/models/single_file/wan2.2_ti2v_tiny_fp16.safetensors";
  test::to_gguf(single, dir + "/wan2.2-ti2v-5b-F32.gguf", [](const std::string& n) { return n; });
  LoadOptions lo;
  lo.config_dir = folder();  // text encoder, tokenizer and VAE from the diffusers folder
  const GenerateParams p = small_request();
  const auto a = engine(folder())->generate(p, {}, nullptr);
  const auto b = engine(dir + "/wan2.2-ti2v-5b-F32.gguf", lo)->generate(p, {}, nullptr);
  ASSERT_EQ(b.videos.size(), 1u);
  for (size_t f = 0; f < a.videos[0].frames.size(); ++f) EXPECT_EQ(a.videos[0].frames[f].pixels, b.videos[0].frames[f].pixels) << f;
  test::to_gguf(single, dir + "/wan_extra.gguf", [](const std::string& n) { return n; }, "blocks.0.self_attn.extra.weight");
  EXPECT_EQ(test::code_of([&] { load_wan_model(dir + "/wan_extra.gguf", lo, false); }), ErrorCode::kUnsupportedModel);
  std::filesystem::remove_all(dir);
}

TEST(WanPipeline, FramesAndSizesAreSnappedOrRefused) {
  auto eng = engine(folder());
  GenerateParams p = small_request();
  p.frames = 7;  // not 4k+1: 5 with a warning, an error with strict
  auto r = eng->generate(p, {}, nullptr);
  EXPECT_EQ(r.videos[0].frames.size(), 5u);
  bool warned = false;
  for (const auto& w : r.warnings) warned |= w.find("becomes 5") != std::string::npos;
  EXPECT_TRUE(warned);
  p.strict = true;
  EXPECT_EQ(eng->validate(p, {}).error().code, ErrorCode::kInvalidArgument);
  p = small_request();
  p.width = 72;  // not a multiple of 16
  EXPECT_EQ(eng->validate(p, {}).error().code, ErrorCode::kInvalidArgument);
  p.width = 80;  // a multiple of 16 but not of 32: floored to 64 with a warning
  r = eng->generate(p, {}, nullptr);
  EXPECT_EQ(r.videos[0].width, 64);
  p = small_request();
  p.task = "text_to_image";
  EXPECT_EQ(eng->validate(p, {}).error().code, ErrorCode::kCapabilityNotSupported);
  p = small_request();
  p.max_sequence_length = 600;
  EXPECT_EQ(eng->validate(p, {}).error().code, ErrorCode::kInvalidArgument);
}

// The image-to-video input of another size is fitted by the resize mode.
TEST(WanPipeline, ImageOfAnotherSizeIsResized) {
  auto eng = engine(folder());
  GenerateParams p = small_request();
  const Image init = read_image_file(root() + "/inputs/image_96x64.png");
  ImageInputs in;
  in.init_image = &init;
  p.width = p.height = 64;
  const auto r = eng->generate(p, in, nullptr);
  ASSERT_EQ(r.videos.size(), 1u);
  EXPECT_EQ(r.videos[0].width, 64);
  EXPECT_EQ(r.videos[0].height, 64);
  p.resize_mode = "none";
  EXPECT_NE(test::code_of([&] { eng->generate(p, in, nullptr); }), ErrorCode::kOk);
}

TEST(WanPipeline, BadComponentsAreClearErrors) {
  // a T5 (FLUX's, one shared position bias) is not UMT5
  LoadOptions t5;
  t5.text_encoder = test::fixtures() + "/flux-tiny/models/flux-tiny-dev/text_encoder_2";
  EXPECT_EQ(test::code_of([&] { load_wan_model(folder(), t5, false); }), ErrorCode::kShapeMismatch);
  // Qwen-Image's VAE has 16 latent channels, not 48
  LoadOptions vae16;
  vae16.vae_file = test::fixtures() + "/qwenimage-tiny/models/qwenimage-tiny/vae";
  EXPECT_EQ(test::code_of([&] { load_wan_model(folder(), vae16, false); }), ErrorCode::kShapeMismatch);
  // the transformer file alone: no text encoder found
  const std::string dir = testing::TempDir() + "/wan_alone";
  std::filesystem::create_directories(dir);
  std::filesystem::copy_file(root() + "/models/single_file/wan2.2_ti2v_tiny_fp16.safetensors", dir + "/wan.safetensors",
                             std::filesystem::copy_options::overwrite_existing);
  EXPECT_EQ(test::code_of([&] { load_wan_model(dir + "/wan.safetensors", {}, false); }), ErrorCode::kMissingComponent);
}

}  // namespace
}  // namespace vg
