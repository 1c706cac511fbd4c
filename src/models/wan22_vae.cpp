// Wan 2.2's encoder and decoder (diffusers WanEncoder3d / WanDecoder3d with
// is_residual) and its published latent statistics.
#include "models/wan22_vae_blocks.h"

namespace vg::wan {

ResidualEncoder::ResidualEncoder(const WanVaeConfig& cfg, const WeightStore& w) {
  std::vector<int64_t> dims{cfg.base_dim};
  for (int64_t m : cfg.dim_mult) dims.push_back(cfg.base_dim * m);
  const int64_t rgb = 3 * cfg.patch_size * cfg.patch_size;
  conv_in_ = CausalConv3d(w, "encoder.conv_in", dims[0], rgb, 3, 3, slots_++);
  const size_t n = cfg.dim_mult.size();
  for (size_t i = 0; i < n; ++i) {
    const bool down = i + 1 < n;  // the last level keeps its size
    down_.emplace_back(w, "encoder.down_blocks." + std::to_string(i) + ".", dims[i], dims[i + 1],
                       cfg.num_res_blocks, down && cfg.temperal_downsample[i], down, slots_);
  }
  const int64_t top = dims.back();
  mid_.emplace_back(w, "encoder.mid_block.", top, slots_);
  norm_out_ = w.get("encoder.norm_out.gamma", {top});
  conv_out_ = CausalConv3d(w, "encoder.conv_out", 2 * cfg.z_dim, top, 3, 3, slots_++);
}

Tensor ResidualEncoder::forward(const Tensor& x, Pass& pass) const {
  Tensor h = conv_in_.forward(x, pass);
  for (const ResidualDownBlock& b : down_) h = b.forward(h, pass);
  h = mid_[0].forward(h, pass);
  return conv_out_.forward(rms_norm(h, norm_out_, true), pass);
}

ResidualDecoder::ResidualDecoder(const WanVaeConfig& cfg, const WeightStore& w) {
  const size_t n = cfg.dim_mult.size();
  const int64_t base = cfg.decoder_dim();
  std::vector<int64_t> dims{base * cfg.dim_mult.back()};
  for (size_t i = n; i-- > 0;) dims.push_back(base * cfg.dim_mult[i]);
  conv_in_ = CausalConv3d(w, "decoder.conv_in", dims[0], cfg.z_dim, 3, 3, slots_++);
  mid_.emplace_back(w, "decoder.mid_block.", dims[0], slots_);
  for (size_t i = 0; i < n; ++i) {
    const bool up = i + 1 < n;
    const bool up_t = up && cfg.temperal_downsample[n - 2 - i];  // reversed: temperal_upsample[i]
    up_.emplace_back(w, "decoder.up_blocks." + std::to_string(i) + ".", dims[i], dims[i + 1],
                     cfg.num_res_blocks, up_t, up, slots_);
  }
  norm_out_ = w.get("decoder.norm_out.gamma", {dims.back()});
  const int64_t rgb = 3 * cfg.patch_size * cfg.patch_size;
  conv_out_ = CausalConv3d(w, "decoder.conv_out", rgb, dims.back(), 3, 3, slots_++);
}

Tensor ResidualDecoder::forward(const Tensor& z, Pass& pass) const {
  Tensor h = conv_in_.forward(z, pass);
  h = mid_[0].forward(h, pass);
  for (const ResidualUpBlock& b : up_) h = b.forward(h, pass);
  return conv_out_.forward(rms_norm(h, norm_out_, true), pass);
}

// Wan2.2_VAE's statistics, as diffusers' conversion script writes them into
// Wan2.2-TI2V-5B-Diffusers' vae/config.json.
const std::vector<float>& wan22_latents_mean() {
  static const std::vector<float> v{
      -0.2289f, -0.0052f, -0.1323f, -0.2339f, -0.2799f, 0.0174f,  0.1838f,  0.1557f,  -0.1382f, 0.0542f,
      0.2813f,  0.0891f,  0.157f,   -0.0098f, 0.0375f,  -0.1825f, -0.2246f, -0.1207f, -0.0698f, 0.5109f,
      0.2665f,  -0.2108f, -0.2158f, 0.2502f,  -0.2055f, -0.0322f, 0.1109f,  0.1567f,  -0.0729f, 0.0899f,
      -0.2799f, -0.123f,  -0.0313f, -0.1649f, 0.0117f,  0.0723f,  -0.2839f, -0.2083f, -0.052f,  0.3748f,
      0.0152f,  0.1957f,  0.1433f,  -0.2944f, 0.3573f,  -0.0548f, -0.1681f, -0.0667f};
  return v;
}

const std::vector<float>& wan22_latents_std() {
  static const std::vector<float> v{0.4765f, 1.0364f, 0.4514f, 1.1677f, 0.5313f, 0.499f,  0.4818f, 0.5013f,
                                    0.8158f, 1.0344f, 0.5894f, 1.0901f, 0.6885f, 0.6165f, 0.8454f, 0.4978f,
                                    0.5759f, 0.3523f, 0.7135f, 0.6804f, 0.5833f, 1.4146f, 0.8986f, 0.5659f,
                                    0.7069f, 0.5338f, 0.4889f, 0.4917f, 0.4069f, 0.4999f, 0.6866f, 0.4093f,
                                    0.5709f, 0.6065f, 0.6415f, 0.4944f, 0.5726f, 1.2042f, 0.5458f, 1.6887f,
                                    0.3971f, 1.06f,   0.3943f, 0.5537f, 0.5444f, 0.4089f, 0.7468f, 0.7744f};
  return v;
}

}  // namespace vg::wan
