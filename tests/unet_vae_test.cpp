#include "backend/cpu/ops.h"
#include "io/weights.h"
#include "models/autoencoder_kl.h"
#include "models/unet.h"
#include "test_util.h"

namespace vg {
namespace {

std::vector<float> to_vec(const Tensor& t) { return std::vector<float>(t.data(), t.data() + t.numel()); }

void check_unet_file(const std::string& model_dir, const std::string& file, const std::string& prefix) {
  auto w = open_component_weights(model_dir + "/unet", "unet");
  UNet unet(UNetConfig::from_json_file(model_dir + "/unet/config.json"), w);
  auto ref = SafetensorsFile::open(file);
  int checked = 0;
  for (const char* group : {"b1_8x8", "b2_16x16"}) {
    const std::string g = prefix + "." + group;
    Tensor sample = nchw_to_nhwc(ref->load_f32(g + ".sample"));
    Tensor ctx = ref->load_f32(g + ".encoder_hidden_states");
    for (auto& [name, info] : ref->tensors()) {
      if (name.rfind(g + ".t", 0) != 0 || name.find(".out") == std::string::npos) continue;
      const std::string c = name.substr(0, name.size() - 4);
      auto ts = to_vec(ref->load_f32(c + ".timestep"));
      const int64_t b = sample.dim(0);
      Tensor proj = unet.time_proj(ts, b);
      EXPECT_LE(test::rel_err(proj, ref->load_f32(c + ".time_proj")), 1e-5) << c;
      EXPECT_LE(test::rel_err(unet.time_embedding(proj), ref->load_f32(c + ".time_emb")), 1e-4) << c;
      Tensor out = nhwc_to_nchw(unet.forward(sample, ts, ctx));
      EXPECT_LE(test::rel_err(out, ref->load_f32(name)), 1e-4) << c;
      ++checked;
    }
  }
  EXPECT_EQ(checked, 8);
}

TEST(UNet, ForwardMatchesDiffusers) {
  check_unet_file(test::tiny_model(), test::tiny() + "/unet/unet.safetensors", "unet");
}

TEST(UNet, InpaintNineChannelForwardMatchesDiffusers) {
  check_unet_file(test::tiny() + "/models/sd1-tiny-inpaint", test::tiny() + "/unet/unet_inpaint.safetensors",
                  "unet_inpaint");
}

class Vae : public ::testing::Test {
 protected:
  void SetUp() override {
    auto w = open_component_weights(test::tiny_model() + "/vae", "vae");
    vae = std::make_unique<AutoencoderKL>(VaeConfig::from_json_file(test::tiny_model() + "/vae/config.json"), w);
    ref = SafetensorsFile::open(test::tiny() + "/vae/vae.safetensors");
  }
  std::unique_ptr<AutoencoderKL> vae;
  std::shared_ptr<SafetensorsFile> ref;
};

TEST_F(Vae, DecodeMatchesDiffusers) {
  Tensor z = nchw_to_nhwc(ref->load_f32("decode.latent"));
  scale_inplace(z, 1.0f / vae->config().scaling_factor);
  Tensor img = nhwc_to_nchw(vae->decode(z));
  EXPECT_LE(test::rel_err(img, ref->load_f32("decode.image")), 1e-4);
  // Forgetting the scaling factor must be visibly different.
  EXPECT_GT(test::rel_err(img, ref->load_f32("decode.image_if_unscaled")), 1e-2);
}

TEST_F(Vae, EncodePosteriorMatchesDiffusers) {
  Posterior p = vae->encode(nchw_to_nhwc(ref->load_f32("encode.image")));
  EXPECT_LE(test::rel_err(nhwc_to_nchw(p.mean), ref->load_f32("encode.mean")), 1e-4);
  EXPECT_LE(test::rel_err(nhwc_to_nchw(p.std), ref->load_f32("encode.std")), 1e-4);
  EXPECT_LE(test::rel_err(nhwc_to_nchw(p.logvar), ref->load_f32("encode.logvar")), 1e-4);
}

}  // namespace
}  // namespace vg

namespace vg {
namespace {

TEST(UNet, SteadyStateStepAllocatesNoNewBuffers) {
  auto w = open_component_weights(test::tiny_model() + "/unet", "unet");
  UNet unet(UNetConfig::from_json_file(test::tiny_model() + "/unet/config.json"), w);
  Tensor x = Tensor::zeros({2, 16, 16, 4});
  Tensor ctx = Tensor::zeros({2, 77, 32});
  unet.forward(x, {500.0f}, ctx);  // warm-up
  const size_t before = tensor_pool_stats().fresh_allocations;
  for (int i = 0; i < 3; ++i) unet.forward(x, {400.0f - i}, ctx);
  EXPECT_EQ(tensor_pool_stats().fresh_allocations, before);
}

}  // namespace
}  // namespace vg

#include "io/image_decode.h"

namespace vg {
namespace {

// A real picture's latents (64x64 image -> 32x32 latents with the tiny VAE).
Tensor picture_latents(const AutoencoderKL& vae) {
  Image im = read_image_file(test::tiny() + "/inputs/test_image_64.png");
  Tensor x({1, im.height, im.width, 3});
  for (int64_t i = 0; i < int64_t{im.width} * im.height; ++i)
    for (int c = 0; c < 3; ++c) x.data()[i * 3 + c] = im.pixels[static_cast<size_t>(i * im.channels + c)] / 127.5f - 1.0f;
  return vae.encode(x).mean;
}

Tensor crop_nhwc(const Tensor& t, int64_t y0, int64_t x0, int64_t h, int64_t w) {
  const int64_t c = t.dim(3);
  Tensor o({1, h, w, c});
  for (int64_t y = 0; y < h; ++y) std::copy_n(t.data() + ((y0 + y) * t.dim(2) + x0) * c, w * c, o.data() + y * w * c);
  return o;
}

TEST_F(Vae, TiledDecodeIsSeamlessAndFollowsDiffusersTiling) {
  const Tensor z = picture_latents(*vae);
  ASSERT_EQ(z.dim(1), 32);
  const int64_t s = vae->scale(), tile = 12, stride = 9, extent = 6, limit = 18;  // overlap 0.25 of a 24-pixel tile
  const Tensor whole = vae->decode(z);
  const Tensor tiled = vae->decode_tiled(z, tile, 0.25f);
  ASSERT_EQ(tiled.shape(), whole.shape());
  // The top-left tile is kept as decoded; the next one to the right only
  // changes in its first `extent` columns (the cross-fade).
  const Tensor t00 = vae->decode(crop_nhwc(z, 0, 0, tile, tile)), t01 = vae->decode(crop_nhwc(z, 0, stride, tile, tile));
  EXPECT_EQ(test::rel_err(crop_nhwc(tiled, 0, 0, limit, limit), crop_nhwc(t00, 0, 0, limit, limit)), 0.0);
  EXPECT_EQ(test::rel_err(crop_nhwc(tiled, 0, limit + extent, limit, limit - extent), crop_nhwc(t01, 0, extent, limit, limit - extent)), 0.0);
  // Seams: the step between neighbouring columns where kept regions meet is
  // no larger than the whole decode's own steps there.
  const int64_t W = whole.dim(2), H = whole.dim(1), C = whole.dim(3);
  auto step = [&](const Tensor& t, int64_t x) {
    double sum = 0;
    for (int64_t y = 0; y < H; ++y)
      for (int64_t c = 0; c < C; ++c) sum += std::fabs(t.data()[(y * W + x) * C + c] - t.data()[(y * W + x - 1) * C + c]);
    return sum;
  };
  double seam_tiled = 0, seam_whole = 0;
  for (int64_t x = limit; x < W; x += limit) seam_tiled += step(tiled, x), seam_whole += step(whole, x);
  double se = 0;
  for (int64_t i = 0; i < whole.numel(); ++i) se += std::pow((tiled.data()[i] - whole.data()[i]) * 127.5, 2);
  std::printf("tiled vs whole decode on the (untrained) fixture VAE: PSNR %.1f dB; seam steps %.2f vs %.2f\n",
              10 * std::log10(255.0 * 255.0 / (se / static_cast<double>(whole.numel()))), seam_tiled, seam_whole);
  EXPECT_LT(seam_tiled, 1.25 * seam_whole);
  // Larger tiles get closer to the whole decode; a tile covering everything is the whole decode.
  EXPECT_LT(test::rel_err(vae->decode_tiled(z, 24, 0.25f), whole), test::rel_err(tiled, whole));
  EXPECT_EQ(test::rel_err(vae->decode_tiled(z, 64, 0.25f), whole), 0.0);
  EXPECT_EQ(test::rel_err(vae->decode_with(z, "auto"), whole), 0.0);  // small images are never tiled
  EXPECT_THROW(vae->decode_tiled(z, 12, 1.0f), VgException);
  (void)s;
}

TEST_F(Vae, TiledEncodeKeepsTheFirstTileAndTheShape) {
  Image im = read_image_file(test::tiny() + "/inputs/test_image_64.png");
  Tensor x({1, im.height, im.width, 3});
  for (int64_t i = 0; i < int64_t{im.width} * im.height; ++i)
    for (int c = 0; c < 3; ++c) x.data()[i * 3 + c] = im.pixels[static_cast<size_t>(i * im.channels + c)] / 127.5f - 1.0f;
  const Posterior whole = vae->encode(x), tiled = vae->encode_tiled(x, 32, 0.25f);
  ASSERT_EQ(tiled.mean.shape(), whole.mean.shape());
  const Posterior first = vae->encode(crop_nhwc(x, 0, 0, 32, 32));
  EXPECT_EQ(test::rel_err(crop_nhwc(tiled.mean, 0, 0, 12, 12), crop_nhwc(first.mean, 0, 0, 12, 12)), 0.0);
  for (int64_t i = 0; i < tiled.std.numel(); ++i) ASSERT_NEAR(tiled.std.data()[i], std::exp(0.5f * tiled.logvar.data()[i]), 1e-6);
  EXPECT_EQ(test::rel_err(vae->encode_tiled(x, 64, 0.25f).mean, whole.mean), 0.0);
}

}  // namespace
}  // namespace vg
