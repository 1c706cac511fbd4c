// AutoencoderTiny (TAESD / TAESDXL) against diffusers' outputs on the sdxl-tiny fixtures.
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "backend/cpu/ops.h"
#include "io/safetensors.h"
#include "io/weights.h"
#include "models/autoencoder_tiny.h"
#include "test_util.h"

namespace vg {
namespace {

namespace fs = std::filesystem;

std::string sdxl_tiny() { return test::fixtures() + "/sdxl-tiny"; }
std::string model_dir(const std::string& name) { return sdxl_tiny() + "/models/" + name + "-tiny"; }

std::shared_ptr<SafetensorsFile> stages() {
  return SafetensorsFile::open(sdxl_tiny() + "/taesd/taesd.safetensors");
}

std::string fresh_dir(const std::string& name) {
  const fs::path d = fs::path(testing::TempDir()) / ("vg_taesd_" + name);
  fs::remove_all(d);
  fs::create_directories(d);
  return d.string();
}

void check_against_diffusers(const AutoencoderTiny& vae, const std::string& p, bool with_encoder = true) {
  auto ref = stages();
  Tensor z = nchw_to_nhwc(ref->load_f32(p + ".decode.latent"));
  EXPECT_LE(test::rel_err(nhwc_to_nchw(AutoencoderTiny::clamp_latents(z)),
                          ref->load_f32(p + ".decode.after_tanh_clamp")),
            1e-6)
      << p;
  Tensor img = vae.decode(z);
  ASSERT_EQ(img.shape(), (Shape{1, 96, 128, 3})) << p;
  EXPECT_LE(test::rel_err(nhwc_to_nchw(img), ref->load_f32(p + ".decode.image")), 1e-5) << p;
  if (!with_encoder) return;
  Tensor lat = vae.encode(nchw_to_nhwc(ref->load_f32(p + ".encode.image")));
  ASSERT_EQ(lat.shape(), (Shape{1, 12, 16, 4})) << p;
  EXPECT_LE(test::rel_err(nhwc_to_nchw(lat), ref->load_f32(p + ".encode.latents")), 1e-5) << p;
}

TEST(Taesd, DecodeAndEncodeMatchDiffusers) {
  for (const char* name : {"taesd", "taesdxl"}) {
    ASSERT_TRUE(AutoencoderTiny::is_tiny_vae_folder(model_dir(name)));
    auto vae = AutoencoderTiny::load_folder(model_dir(name));
    EXPECT_TRUE(vae->has_encoder() && vae->has_decoder());
    EXPECT_EQ(vae->scale(), 8);
    EXPECT_EQ(vae->latent_channels(), 4);
    EXPECT_EQ(vae->scaling_factor(), 1.0f);
    check_against_diffusers(*vae, name);
  }
  EXPECT_FALSE(AutoencoderTiny::is_tiny_vae_folder(test::tiny_model() + "/vae"));  // an AutoencoderKL
}

TEST(Taesd, ScaleLatentsMatchesDiffusers) {
  auto vae = AutoencoderTiny::load_folder(model_dir("taesd"));
  auto ref = stages();
  Tensor s = vae->scale_latents(ref->load_f32("taesd.encode.latents"));  // elementwise: NCHW is fine
  EXPECT_LE(test::rel_err(s, ref->load_f32("taesd.scale_latents")), 1e-6);
  EXPECT_LE(test::rel_err(vae->unscale_latents(s), ref->load_f32("taesd.unscale_latents_of_scaled")), 1e-6);
}

// madebyollin's own files: encoder Sequential indices as diffusers', decoder
// indices shifted by one (its Sequential starts with a Clamp).
void write_original(const std::string& src_dir, const std::string& out_dir, const std::string& stem,
                    bool encoder) {
  auto src = SafetensorsFile::open(src_dir + "/diffusion_pytorch_model.safetensors");
  std::vector<Tensor> keep;  // the buffers outlive the writes
  std::vector<TensorToWrite> enc, dec;
  for (const auto& [name, info] : src->tensors()) {
    const bool is_enc = name.rfind("encoder.layers.", 0) == 0;
    const std::string rest = name.substr(15);  // after "encoder.layers." / "decoder.layers."
    const size_t dot = rest.find('.');
    const int idx = std::stoi(rest.substr(0, dot)) + (is_enc ? 0 : 1);
    keep.push_back(src->load_f32(name));
    (is_enc ? enc : dec)
        .push_back({std::to_string(idx) + rest.substr(dot), DType::kF32, info.shape, keep.back().data()});
  }
  if (encoder) write_safetensors(out_dir + "/" + stem + "_encoder.safetensors", enc);
  write_safetensors(out_dir + "/" + stem + "_decoder.safetensors", dec);
}

TEST(Taesd, OriginalSingleFilesMatchDiffusers) {
  const std::string d = fresh_dir("orig");
  write_original(model_dir("taesdxl"), d, "taesdxl", true);
  ASSERT_TRUE(AutoencoderTiny::is_tiny_vae_folder(d));
  auto vae = AutoencoderTiny::load_folder(d);
  // the structure is read from the weights: the tiny block counts, not the real defaults
  EXPECT_EQ(vae->config().num_decoder_blocks, (std::vector<int64_t>{2, 2, 2, 1}));
  EXPECT_EQ(vae->config().num_encoder_blocks, (std::vector<int64_t>{1, 2, 2, 2}));
  EXPECT_EQ(vae->config().decoder_block_out_channels, (std::vector<int64_t>{16, 16, 16, 16}));
  check_against_diffusers(*vae, "taesdxl");
}

TEST(Taesd, DecoderOnlyFolderDecodesAndRefusesEncode) {
  const std::string d = fresh_dir("dec_only");
  write_original(model_dir("taesd"), d, "taesd", false);
  auto vae = AutoencoderTiny::load_folder(d);
  EXPECT_TRUE(vae->has_decoder());
  EXPECT_FALSE(vae->has_encoder());
  check_against_diffusers(*vae, "taesd", /*with_encoder=*/false);
  EXPECT_EQ(test::code_of([&] { vae->encode(Tensor::zeros({1, 16, 16, 3})); }), ErrorCode::kMissingComponent);
  EXPECT_EQ(test::code_of([&] { vae->decode(Tensor::zeros({1, 2, 2, 3})); }), ErrorCode::kShapeMismatch);
}

TEST(Taesd, BadFoldersGiveErrorCodes) {
  const std::string src = model_dir("taesd");
  // truncated weights
  const std::string t = fresh_dir("truncated");
  fs::copy_file(src + "/config.json", t + "/config.json");
  const std::string bytes = read_file(src + "/diffusion_pytorch_model.safetensors");
  std::ofstream(t + "/diffusion_pytorch_model.safetensors", std::ios::binary)
      << bytes.substr(0, bytes.size() / 2);
  EXPECT_EQ(test::code_of([&] { AutoencoderTiny::load_folder(t); }), ErrorCode::kCorruptFile);
  // weights without config.json and not in the original layout
  const std::string m = fresh_dir("no_config");
  fs::copy_file(src + "/diffusion_pytorch_model.safetensors", m + "/diffusion_pytorch_model.safetensors");
  EXPECT_EQ(test::code_of([&] { AutoencoderTiny::load_folder(m); }), ErrorCode::kMissingComponent);
  // config without weights
  const std::string w = fresh_dir("no_weights");
  fs::copy_file(src + "/config.json", w + "/config.json");
  EXPECT_EQ(test::code_of([&] { AutoencoderTiny::load_folder(w); }), ErrorCode::kMissingComponent);
  // an AutoencoderKL config
  EXPECT_EQ(test::code_of([&] { AutoencoderTiny::load_folder(test::tiny_model() + "/vae"); }),
            ErrorCode::kUnsupportedModel);
  EXPECT_EQ(test::code_of([&] { AutoencoderTiny::load_folder(t + "/nope"); }), ErrorCode::kFileNotFound);
  // a config whose block counts disagree with the weights
  const std::string b = fresh_dir("bad_counts");
  std::string cfg = read_file(src + "/config.json");
  const size_t at = cfg.find("\"num_decoder_blocks\"");
  ASSERT_NE(at, std::string::npos);
  cfg.replace(cfg.find('2', at), 1, "3");
  std::ofstream(b + "/config.json") << cfg;
  fs::copy_file(src + "/diffusion_pytorch_model.safetensors", b + "/diffusion_pytorch_model.safetensors");
  EXPECT_EQ(test::code_of([&] { AutoencoderTiny::load_folder(b); }), ErrorCode::kShapeMismatch);
}

// Not a pass/fail timing: prints the cost of one real-width TAESD decode
// (64x64x4 latents -> 512x512) so it can be compared with the full VAE.
// Several seconds on two cores, hence Slow.
TEST(Taesd, SlowRealWidthDecodeTiming) {
  WeightStore ws;
  ws.make_synthetic(7);
  AutoencoderTiny vae(TinyVaeConfig{}, ws);
  Tensor z = Tensor::zeros({1, 64, 64, 4});
  for (int64_t i = 0; i < z.numel(); ++i) z.data()[i] = std::sin(0.37f * static_cast<float>(i));
  Tensor img = vae.decode(z);  // warm-up: weight reorders, primitive creation
  ASSERT_EQ(img.shape(), (Shape{1, 512, 512, 3}));
  double best = 1e30;
  for (int r = 0; r < 2; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    img = vae.decode(z);
    best = std::min(best,
                    std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  for (int64_t i = 0; i < img.numel(); ++i) ASSERT_TRUE(std::isfinite(img.data()[i]));
  std::printf("[taesd] real-width decode 64x64x4 -> 512x512: %.1f ms (best of 2)\n", best);
}

}  // namespace
}  // namespace vg
