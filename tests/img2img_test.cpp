// Image-to-image and inpainting against diffusers' Img2Img / Inpaint
// pipelines, latent-blend inpainting on a normal model, and bad inputs.
#include <filesystem>

#include "backend/cpu/ops.h"
#include "io/atomic_file.h"
#include "io/image_decode.h"
#include "io/image_io.h"
#include "pipelines/image_prep.h"
#include "pipelines/img2img.h"
#include "sampling/torch_rng.h"
#include "test_util.h"

namespace vg {
namespace {

namespace fs = std::filesystem;
const char* kPrompt = "a photograph of an astronaut riding a horse";

SdModel& model(const std::string& name) {
  static std::map<std::string, std::unique_ptr<SdModel>> cache;
  auto& m = cache[name];
  if (!m) m = load_sd_model(test::tiny() + "/models/" + name);
  return *m;
}

std::string image_path() { return test::tiny() + "/inputs/test_image_64.png"; }
std::string mask_path() { return test::tiny() + "/inputs/test_mask_64.png"; }

Tensor nchw(const Tensor& nhwc) { return nhwc_to_nchw(nhwc); }

Tensor decode01(SdModel& m, Tensor lat) {
  scale_inplace(lat, 1.0f / m.vae->config().scaling_factor);
  Tensor img = nhwc_to_nchw(m.vae->decode(lat));
  for (int64_t i = 0; i < img.numel(); ++i) img.data()[i] = std::clamp(img.data()[i] / 2 + 0.5f, 0.0f, 1.0f);
  return img;
}

struct EditCase {
  std::string model, sampler, file;
  double strength;
  uint64_t seed;
  bool mask = false, given_latents = false;
};

void expect_edit_case(const EditCase& c) {
  SdModel& m = model(c.model);
  auto ref = SafetensorsFile::open(test::tiny() + "/" + c.file);
  auto s = make_sampler(c.sampler, m.scheduler);
  s->set_timesteps(10);
  Tensor cond = m.text_encoder->encode({m.tokenizer->encode_padded(kPrompt)}, 1);
  Tensor uncond = m.text_encoder->encode({m.tokenizer->encode_padded("")}, 1);
  EditLatentsInput in;
  in.image = image_to_tensor(read_image_file(image_path()));
  in.strength = c.strength;
  if (c.mask) {
    auto mk = mask_from_image(read_image_file(mask_path()), false);
    for (auto& v : mk) v = v >= 0.5f ? 1.0f : 0.0f;
    in.mask = mk;
  }
  TorchCpuGenerator noise_gen(1234);
  Tensor initial = noise_gen.randn_nhwc({1, 32, 32, 4});
  if (c.given_latents) in.initial_latents = &initial;
  TorchCpuGenerator rng(c.seed);
  EditTrace tr;
  Tensor lat = edit_latents(m, *s, 10, cond, uncond, 7.5f, rng, in, {}, &tr);
  auto vae = SafetensorsFile::open(test::tiny() + "/vae/vae.safetensors");
  if (!tr.posterior_mean.empty()) {
    EXPECT_LE(test::rel_err(nchw(tr.posterior_mean), vae->load_f32("encode.mean")), 1e-4) << c.file;
    EXPECT_LE(test::rel_err(nchw(tr.posterior_std), vae->load_f32("encode.std")), 1e-4) << c.file;
  }
  ASSERT_FALSE(tr.unet_inputs.empty());
  EXPECT_LE(test::rel_err(nchw(tr.unet_inputs[0]), ref->load_f32("unet_in_step0")), 1e-4) << c.file;
  Tensor sl = ref->load_f32("step_latents");
  ASSERT_EQ(static_cast<int64_t>(tr.step_latents.size()), sl.dim(0)) << c.file;
  for (size_t k = 0; k < tr.step_latents.size(); ++k) {
    Tensor mine = nchw(tr.step_latents[k]);
    Tensor theirs = Tensor::from(mine.shape(), sl.data() + k * mine.numel());
    EXPECT_LE(test::rel_err(mine, theirs), 1e-3) << c.file << " step " << k;
  }
  EXPECT_LE(test::rel_err(nchw(lat), ref->load_f32("latents_final")), 1e-3) << c.file;
  EXPECT_GE(test::frac_within(decode01(m, lat), ref->load_f32("image"), 1.0 / 255), 0.99) << c.file;
}

TEST(Img2Img, InitImageTensorIsDiffusersPreprocessing) {
  auto vae = SafetensorsFile::open(test::tiny() + "/vae/vae.safetensors");
  Tensor t = nchw(image_to_tensor(read_image_file(image_path())));
  EXPECT_EQ(test::max_abs_diff(t.data(), vae->load_f32("encode.image").data(), t.numel()), 0.0);
}

TEST(Img2Img, DdimStrengthHalfMatchesDiffusers) {
  expect_edit_case({"sd1-tiny", "ddim", "img2img/ddim_strength0p5_steps10_cfg7p5.safetensors", 0.5, 7});
}
TEST(Img2Img, DdimStrength08MatchesDiffusers) {
  expect_edit_case({"sd1-tiny", "ddim", "img2img/ddim_strength0p8_steps10_cfg7p5.safetensors", 0.8, 7});
}
TEST(Img2Img, EulerStrengthHalfMatchesDiffusers) {
  expect_edit_case({"sd1-tiny", "euler", "img2img/euler_strength0p5_steps10_cfg7p5.safetensors", 0.5, 7});
}
TEST(Img2Img, EulerStrength08MatchesDiffusers) {
  expect_edit_case({"sd1-tiny", "euler", "img2img/euler_strength0p8_steps10_cfg7p5.safetensors", 0.8, 7});
}

TEST(Inpaint, MaskPreprocessingMatchesDiffusers) {
  auto ref = SafetensorsFile::open(test::tiny() + "/inpaint/inputs.safetensors");
  auto mk = mask_from_image(read_image_file(mask_path()), false);
  Tensor want = ref->load_f32("mask");
  int64_t same = 0;
  for (int64_t i = 0; i < want.numel(); ++i) same += (mk[i] >= 0.5f ? 1.0f : 0.0f) == want.data()[i];
  EXPECT_EQ(same, want.numel());  // includes the grey ramp rows
}

TEST(Inpaint, NineChannelPlmsStrength1MatchesDiffusers) {
  expect_edit_case({"sd1-tiny-inpaint", "PNDMScheduler", "inpaint/pndm_plms_strength1p0_steps10_cfg7p5.safetensors", 1.0, 8, true, true});
}
TEST(Inpaint, NineChannelDdimStrength075MatchesDiffusers) {
  expect_edit_case({"sd1-tiny-inpaint", "ddim", "inpaint/ddim_strength0p75_steps10_cfg7p5.safetensors", 0.75, 9, true});
}

Tensor to01(const Image& img) {
  Tensor t({1, 3, img.height, img.width});
  for (int c = 0; c < 3; ++c)
    for (int i = 0; i < img.width * img.height; ++i) t.data()[c * img.width * img.height + i] = img.pixels[i * img.channels + c] / 255.0f;
  return t;
}

TEST(Inpaint, EngineReproducesDiffusersPngFromSeed) {
  auto e = Engine::load(test::tiny() + "/models/sd1-tiny-inpaint");
  ASSERT_TRUE(e) << e.error().to_string();
  GenerateParams p;
  p.prompt = kPrompt;
  p.steps = 10;
  p.sampler = "ddim";
  p.seed = 9;
  p.init_image = image_path();
  p.mask = mask_path();
  p.strength = 0.75f;
  auto r = (*e)->generate(p);
  ASSERT_TRUE(r) << r.error().to_string();
  Image ref = decode_png(read_file(test::tiny() + "/inpaint/ddim_strength0p75_steps10_cfg7p5.png"), "ref");
  EXPECT_GE(test::frac_within(to01(r->images[0]), to01(ref), 1.0 / 255 + 1e-6), 0.99);
  EXPECT_NE(r->infotext[0].find("Denoising strength: 0.75"), std::string::npos) << r->infotext[0];
  EXPECT_NE(r->infotext[0].find("Mask blur: 0"), std::string::npos);
}

TEST(Img2Img, EngineReproducesDiffusersPngFromSeed) {
  auto e = Engine::load(test::tiny_model());
  ASSERT_TRUE(e);
  GenerateParams p;
  p.prompt = kPrompt;
  p.steps = 10;
  p.sampler = "euler";
  p.seed = 7;
  p.init_image = image_path();
  p.strength = 0.8f;
  auto r = (*e)->generate(p);
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(r->images[0].width, 64);  // size taken from the init image
  Image ref = decode_png(read_file(test::tiny() + "/img2img/euler_strength0p8_steps10_cfg7p5.png"), "ref");
  EXPECT_GE(test::frac_within(to01(r->images[0]), to01(ref), 1.0 / 255 + 1e-6), 0.99);
}

// Latent-blend inpainting with the normal 4-channel model: outside the mask
// the output is the input (paste-back), inside it is new.
void expect_blend(GenerateParams p, bool expect_inside_change = true) {
  static auto e = Engine::load(test::tiny_model());
  ASSERT_TRUE(e);
  p.prompt = kPrompt;
  p.steps = 6;
  p.seed = 3;
  p.init_image = image_path();
  p.mask = mask_path();
  auto r = (*e)->generate(p);
  ASSERT_TRUE(r) << r.error().to_string();
  const Image in = read_image_file(image_path());
  auto mk = mask_from_image(read_image_file(mask_path()), false);
  double outside_worst = 0, inside_sum = 0;
  int inside_n = 0;
  const Image& out = r->images[0];
  ASSERT_EQ(out.width, in.width);
  for (int i = 0; i < in.width * in.height; ++i) {
    const bool repaint = (mk[i] >= 0.5f) != p.invert_mask;
    for (int c = 0; c < 3; ++c) {
      const double d = std::abs(int(out.pixels[i * 3 + c]) - int(in.pixels[i * 4 + c]));
      if (!repaint) outside_worst = std::max(outside_worst, d);
      else inside_sum += d, ++inside_n;
    }
  }
  EXPECT_LE(outside_worst, 2.0);
  if (expect_inside_change) EXPECT_GT(inside_sum / inside_n, 5.0);
}

TEST(Inpaint, LatentBlendKeepsUnmaskedPixels) { expect_blend({}); }
TEST(Inpaint, LatentBlendWithBlurAndInvert) {
  GenerateParams p;
  p.mask_blur = 3;
  expect_blend(p);
  p.invert_mask = true;
  expect_blend(p);
}
TEST(Inpaint, OnlyMaskedCropPastesBack) {
  GenerateParams p;
  p.inpaint_full_res = true;
  p.inpaint_full_res_padding = 4;
  p.width = p.height = 32;
  expect_blend(p);
}

TEST(Inpaint, AlphaMaskMeansTransparentIsRepainted) {
  Image m = read_image_file(mask_path());
  Image alpha = m;  // white (repaint) -> transparent, black -> opaque
  for (int i = 0; i < m.width * m.height; ++i) alpha.pixels[i * 4 + 3] = static_cast<uint8_t>(255 - m.pixels[i * 4]);
  for (int i = 0; i < m.width * m.height; ++i) alpha.pixels[i * 4] = alpha.pixels[i * 4 + 1] = alpha.pixels[i * 4 + 2] = 0;
  auto a = mask_from_image(alpha, has_transparency(alpha));
  auto l = mask_from_image(m, false);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], l[i], 1.0 / 255 + 1e-6);
}

TEST(ImagePrep, ResizeModesAndCropBox) {
  Image img;
  img.width = 40, img.height = 20, img.channels = 3;
  img.pixels.assign(40 * 20 * 3, 0);
  for (int x = 20; x < 40; ++x)
    for (int y = 0; y < 20; ++y) img.pixels[(y * 40 + x) * 3] = 255;  // right half red
  Image a = fit_image(img, 16, 16, "just_resize");
  EXPECT_EQ(a.width, 16);
  EXPECT_LT(a.pixels[(8 * 16 + 2) * 3], 10);    // left stays dark
  EXPECT_GT(a.pixels[(8 * 16 + 13) * 3], 245);  // right stays red
  Image c = fit_image(img, 16, 16, "crop_and_resize");  // centre crop: half dark, half red
  EXPECT_LT(c.pixels[(8 * 16 + 1) * 3], 10);
  EXPECT_GT(c.pixels[(8 * 16 + 14) * 3], 245);
  Image f = fit_image(img, 16, 16, "resize_and_fill");  // 16x8 picture, edges stretched up/down
  EXPECT_EQ(f.height, 16);
  EXPECT_EQ(f.pixels[(0 * 16 + 15) * 3], f.pixels[(8 * 16 + 15) * 3]);
  std::vector<float> mk(64 * 64, 0.0f);
  for (int y = 30; y < 34; ++y)
    for (int x = 10; x < 14; ++x) mk[y * 64 + x] = 1;
  Box b = mask_crop_box(mk, 64, 64, 2, 32, 16);  // 8x8 box -> widened to 2:1
  EXPECT_EQ(b.width(), 2 * b.height());
  EXPECT_LE(b.x0, 8);
  EXPECT_GE(b.x1, 16);
}

// Bad inputs: each with its error code, before any work.
class EditErrors : public ::testing::Test {
 protected:
  static Engine& engine() {
    static auto e = Engine::load(test::tiny_model());
    return **e;
  }
  ErrorCode code(const GenerateParams& p) {
    Status s = engine().validate(p);
    return s ? ErrorCode::kOk : s.error().code;
  }
  GenerateParams base() {
    GenerateParams p;
    p.prompt = "x";
    p.steps = 4;
    p.init_image = image_path();
    return p;
  }
  std::string tmp(const std::string& name, const std::string& bytes) {
    fs::path d = fs::path(testing::TempDir()) / "vg_edit";
    fs::create_directories(d);
    const std::string path = (d / name).string();
    write_file_atomic(path, bytes);
    return path;
  }
};

TEST_F(EditErrors, StrengthOutsideRange) {
  auto p = base();
  EXPECT_EQ(code(p), ErrorCode::kOk);
  p.strength = 0;
  EXPECT_EQ(code(p), ErrorCode::kInvalidArgument);
  p.strength = 1.5f;
  EXPECT_EQ(code(p), ErrorCode::kInvalidArgument);
  p.strength = 0.01f;  // int(4 * 0.01) = 0 steps
  auto r = engine().generate(p);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(r.error().message.find("raise strength"), std::string::npos);
}

TEST_F(EditErrors, UnreadableAndTruncatedImages) {
  const std::string png = read_file(image_path());
  auto p = base();
  p.init_image = tmp("trunc.png", png.substr(0, png.size() / 2));
  EXPECT_EQ(code(p), ErrorCode::kCorruptFile);
  p.init_image = tmp("text.png", "this is not an image at all");
  EXPECT_EQ(code(p), ErrorCode::kUnsupportedFormat);
  p.init_image = tmp("empty.png", "");
  EXPECT_EQ(code(p), ErrorCode::kCorruptFile);
  p.init_image = "/no/such/image.png";
  EXPECT_EQ(code(p), ErrorCode::kFileNotFound);
  Image img = read_image_file(image_path());
  Image rgb = img;
  rgb.channels = 3;
  rgb.pixels.clear();
  for (size_t i = 0; i < img.pixels.size(); i += 4) rgb.pixels.insert(rgb.pixels.end(), {img.pixels[i], img.pixels[i + 1], img.pixels[i + 2]});
  const std::string jpg = encode_jpeg(rgb, "");
  p.init_image = tmp("ok.jpg", jpg);
  EXPECT_EQ(code(p), ErrorCode::kOk);
  p.init_image = tmp("trunc.jpg", jpg.substr(0, jpg.size() / 2));
  EXPECT_EQ(code(p), ErrorCode::kCorruptFile);
  const std::string webp = encode_webp(rgb);
  p.init_image = tmp("ok.webp", webp);
  EXPECT_EQ(code(p), ErrorCode::kOk);
  p.init_image = tmp("trunc.webp", webp.substr(0, webp.size() / 2));
  EXPECT_EQ(code(p), ErrorCode::kCorruptFile);
}

TEST_F(EditErrors, MaskSizeMismatchAndMaskWithoutImage) {
  Image img = read_image_file(image_path());
  Image small = resize_image(img, 32, 32);
  small.channels = 4;
  Image rgb;
  rgb.width = 32, rgb.height = 32, rgb.channels = 3;
  for (size_t i = 0; i < small.pixels.size(); i += 4) rgb.pixels.insert(rgb.pixels.end(), {small.pixels[i], small.pixels[i + 1], small.pixels[i + 2]});
  auto p = base();
  p.mask = tmp("small_mask.png", encode_png(rgb, ""));
  Status s = engine().validate(p);
  // the size check runs when the job starts; generate reports it
  auto r = engine().generate(p);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(r.error().message.find("same size"), std::string::npos) << r.error().message;
  p = base();
  p.init_image.clear();
  p.mask = mask_path();
  EXPECT_EQ(code(p), ErrorCode::kInvalidArgument);
}

TEST_F(EditErrors, SizeNotAMultipleErrorsOnlyWhenAsked) {
  Image img = read_image_file(image_path());
  Image odd = resize_image(img, 62, 62);
  Image rgb;
  rgb.width = 62, rgb.height = 62, rgb.channels = 3;
  for (size_t i = 0; i < odd.pixels.size(); i += 4) rgb.pixels.insert(rgb.pixels.end(), {odd.pixels[i], odd.pixels[i + 1], odd.pixels[i + 2]});
  auto p = base();
  p.init_image = tmp("odd.png", encode_png(rgb, ""));
  p.resize_mode = "none";
  EXPECT_EQ(code(p), ErrorCode::kInvalidArgument);
  p.resize_mode = "just_resize";  // 62 -> 60 (multiple of 4)
  auto r = engine().generate(p);
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(r->images[0].width, 60);
  p.resize_mode = "sideways";
  EXPECT_EQ(code(p), ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace vg
