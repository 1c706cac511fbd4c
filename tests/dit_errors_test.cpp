// Bad inputs to the FLUX and SD3 engines, through the public vg::Engine:
// each fails with a stable code and a message that says what to do.
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "io/atomic_file.h"
#include "test_util.h"

namespace vg {
namespace {

namespace fs = std::filesystem;

std::string flux_models() { return test::fixtures() + "/flux-tiny/models"; }
std::string sd3_models() { return test::fixtures() + "/sd3-tiny/models"; }

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

GenerateParams small(int steps = 1) {
  GenerateParams p;
  p.prompt = "a red fox";
  p.width = p.height = 64;
  p.steps = steps;
  p.seed = 1;
  p.cfg_scale = 1;
  return p;
}

LoadOptions fp32() {
  LoadOptions lo;
  lo.precision = "fp32";
  lo.threads = 2;
  return lo;
}

TEST(DitErrors, FluxTransformerFileWithoutTextEncodersIsMissingComponent) {
  auto e = Engine::load(flux_models() + "/flux1-tiny-dev.safetensors", fp32());
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().code, ErrorCode::kMissingComponent) << e.error().to_string();
  // the message names what is missing and the flags that supply it
  EXPECT_TRUE(has(e.error().message, "--clip-l") || has(e.error().message, "--t5")) << e.error().message;
}

TEST(DitErrors, T5OfTheWrongWidthIsShapeMismatch) {
  LoadOptions lo = fp32();
  lo.t5 = sd3_models() + "/sd3-tiny/text_encoder_3";  // 128 wide; flux-tiny's transformer takes 64
  auto e = Engine::load(flux_models() + "/flux-tiny-dev", lo);
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().code, ErrorCode::kShapeMismatch) << e.error().to_string();
  EXPECT_TRUE(has(e.error().message, "128") && has(e.error().message, "64")) << e.error().message;
}

TEST(DitErrors, SizesNotAMultipleOf16AreInvalid) {
  auto e = Engine::load(flux_models() + "/flux-tiny-dev", fp32());
  ASSERT_TRUE(e) << e.error().to_string();
  GenerateParams p = small();
  p.width = 72;  // a multiple of 8, not of 16
  Status st = (*e)->validate(p);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, ErrorCode::kInvalidArgument);
  EXPECT_TRUE(has(st.error().message, "multiples of 16")) << st.error().message;
  EXPECT_TRUE(has(st.error().message, "80x64")) << st.error().message;  // the suggestion
  auto r = (*e)->generate(p);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
}

TEST(DitErrors, GuidanceOnSchnellWarnsAndStillMakesTheImage) {
  auto e = Engine::load(flux_models() + "/flux-tiny-schnell", fp32());
  ASSERT_TRUE(e) << e.error().to_string();
  GenerateParams p = small();
  p.guidance = 3.5f;
  ASSERT_TRUE((*e)->validate(p));
  auto r = (*e)->generate(p);
  ASSERT_TRUE(r) << r.error().to_string();
  ASSERT_EQ(r->images.size(), 1u);
  EXPECT_EQ(r->images[0].width, 64);
  bool warned = false;
  for (const auto& w : r->warnings) warned |= has(w, "guidance");
  EXPECT_TRUE(warned);
}

TEST(DitErrors, TruncatedBflFileIsCorrupt) {
  const fs::path dir = fs::temp_directory_path() / ("vg_diterr_" + std::to_string(getpid()));
  fs::create_directories(dir);
  const std::string whole = read_file(flux_models() + "/flux1-tiny-dev.safetensors");
  const std::string cut = (dir / "flux1-tiny-dev.safetensors").string();
  {
    std::ofstream f(cut, std::ios::binary);
    f.write(whole.data(), static_cast<std::streamsize>(whole.size() / 2));
  }
  LoadOptions lo = fp32();  // the components are fine: only the transformer is cut
  lo.clip_l = flux_models() + "/flux-tiny-dev/text_encoder";
  lo.t5 = flux_models() + "/flux-tiny-dev/text_encoder_2";
  lo.vae_file = flux_models() + "/ae-tiny.safetensors";
  lo.config_dir = flux_models() + "/flux-tiny-dev";
  auto e = Engine::load(cut, lo);
  fs::remove_all(dir);
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().code, ErrorCode::kCorruptFile) << e.error().to_string();
  EXPECT_TRUE(has(e.error().message, "flux1-tiny-dev.safetensors")) << e.error().message;
}

TEST(DitErrors, Sd3SkipLayerOutOfRangeIsInvalid) {
  auto e = Engine::load(sd3_models() + "/sd3-tiny", fp32());
  ASSERT_TRUE(e) << e.error().to_string();
  GenerateParams p = small();
  p.cfg_scale = 4;
  p.skip_layers = "0,99";
  Status st = (*e)->validate(p);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, ErrorCode::kInvalidArgument);
  EXPECT_TRUE(has(st.error().message, "skip layer 99")) << st.error().message;
  p.skip_layers = "1,x";  // not a number
  st = (*e)->validate(p);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, ErrorCode::kInvalidArgument);
  p.skip_layers = "1";
  EXPECT_TRUE((*e)->validate(p)) << (*e)->validate(p).error().message;
}

}  // namespace
}  // namespace vg
