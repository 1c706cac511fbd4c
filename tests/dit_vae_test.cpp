// FLUX's and SD3's 16-channel VAEs (no quant convs, scale + shift) vs
// diffusers: the diffusers folders, BFL's ae.safetensors and the VAE inside
// the SD3.5 single file, through the DiT component loader.
#include "backend/cpu/ops.h"
#include "pipelines/dit_components.h"
#include "test_util.h"

namespace vg {
namespace {

void check_vae(const AutoencoderKL& vae, const std::string& ref_path) {
  auto ref = SafetensorsFile::open(ref_path);
  const VaeConfig& c = vae.config();
  EXPECT_FALSE(c.use_quant_conv);
  // decode: latent / scale + shift
  Tensor z = nchw_to_nhwc(ref->load_f32("decode.latent"));
  for (int64_t i = 0; i < z.numel(); ++i) z.data()[i] = z.data()[i] / c.scaling_factor + c.shift_factor;
  EXPECT_LE(test::rel_err(nhwc_to_nchw(vae.decode(z)), ref->load_f32("decode.image")), 1e-4);
  // encode: moments without quant_conv, then (sample - shift) * scale
  const Posterior post = vae.encode(nchw_to_nhwc(ref->load_f32("encode.image")));
  EXPECT_LE(test::rel_err(nhwc_to_nchw(post.mean), ref->load_f32("encode.mean")), 1e-4);
  EXPECT_LE(test::rel_err(nhwc_to_nchw(post.logvar), ref->load_f32("encode.logvar")), 1e-4);
  const Tensor eps = nchw_to_nhwc(ref->load_f32("encode.eps"));
  Tensor x0(post.mean.shape());
  for (int64_t i = 0; i < x0.numel(); ++i)
    x0.data()[i] = (post.mean.data()[i] + post.std.data()[i] * eps.data()[i] - c.shift_factor) * c.scaling_factor;
  EXPECT_LE(test::rel_err(nhwc_to_nchw(x0), ref->load_f32("encode.sample_shifted_scaled")), 1e-4);
}

TEST(DitVae, FluxFolderAndBflFileMatchDiffusers) {
  const std::string root = test::fixtures() + "/flux-tiny";
  const std::string folder = root + "/models/flux-tiny-dev/vae";
  check_vae(*load_vae_component({folder, "", ""}, false, VaeConfig{}), root + "/vae/vae.safetensors");
  // BFL's layout; the groups/scale/shift a file cannot tell come from the config folder
  check_vae(*load_vae_component({root + "/models/ae-tiny.safetensors", "", folder}, false, VaeConfig{}),
            root + "/vae/vae.safetensors");
}

TEST(DitVae, Sd3FolderAndSingleFileMatchDiffusers) {
  const std::string root = test::fixtures() + "/sd3-tiny";
  const std::string folder = root + "/models/sd3-tiny/vae";
  check_vae(*load_vae_component({folder, "", ""}, false, VaeConfig{}), root + "/vae/vae.safetensors");
  check_vae(*load_vae_component({root + "/models/sd3.5-tiny-medium.safetensors", "first_stage_model.", folder}, false, VaeConfig{}),
            root + "/vae/vae.safetensors");
}

}  // namespace
}  // namespace vg
