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
