// The Wan 2.1-style causal 3-D VAE (diffusers AutoencoderKLQwenImage and
// AutoencoderKLWan 2.1): video frames <-> latent frames, 8x in space and 4x in
// time (1+4k frames <-> 1+k latent frames). Frames are processed in chunks
// (encoder: the first frame, then 4 at a time; decoder: one latent frame at a
// time) and each causal convolution keeps only its last 2 input frames, so
// memory does not grow with the number of frames.
#pragma once
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "models/autoencoder_kl.h"

namespace vg {

struct WanVaeConfig {  // diffusers AutoencoderKLQwenImage / AutoencoderKLWan (2.1) config.json fields
  int64_t base_dim = 96, z_dim = 16, num_res_blocks = 2;
  std::vector<int64_t> dim_mult{1, 2, 4, 4};
  std::vector<float> attn_scales;
  std::vector<bool> temperal_downsample{false, true, true};
  // Per-channel latent statistics (the pipeline normalises with them); the
  // defaults are the published Wan 2.1 values, as in diffusers.
  std::vector<float> latents_mean{-0.7571f, -0.7089f, -0.9113f, 0.1075f,  -0.1745f, 0.9653f,
                                  -0.1517f, 1.5508f,  0.4134f,  -0.0715f, 0.5517f,  -0.3632f,
                                  -0.1922f, -0.9497f, 0.2503f,  -0.2921f};
  std::vector<float> latents_std{2.8184f, 1.4541f, 2.3275f, 2.6558f, 1.2196f, 1.7708f, 2.6052f, 2.0743f,
                                 3.2687f, 2.1526f, 2.8652f, 1.5579f, 1.6382f, 1.1253f, 2.8251f, 1.9160f};

  static WanVaeConfig from_json_file(const std::string& path);
  // `source` names the config in error messages.
  static WanVaeConfig from_json(const nlohmann::json& j, const std::string& source);
  // The architecture read from the tensor shapes (diffusers names), for a
  // single file without a config; latents_mean/std keep their defaults.
  static WanVaeConfig from_weights(const WeightStore& w);
  int64_t spatial_scale() const { return int64_t{1} << temperal_downsample.size(); }  // 8
  int64_t temporal_scale() const;  // 4 with two temporal downsamples
};

namespace wan {
class Encoder;
class Decoder;
}  // namespace wan

class WanVae {
 public:
  // Weights under diffusers' names (see wan_vae_weights_from_original).
  WanVae(const WanVaeConfig& cfg, const WeightStore& w, bool with_encoder = true);
  ~WanVae();
  WanVae(WanVae&&) noexcept;
  WanVae& operator=(WanVae&&) noexcept;

  // video: frames in [-1,1], NHWC per frame: [T, H, W, 3], T = 1 + 4k (else
  // shape_mismatch); H, W multiples of 8. The posterior (logvar clamped to [-30, 20]):
  // [1+k, H/8, W/8, z_dim].
  Posterior encode(const Tensor& video) const;
  // z: raw latents (z*std+mean is the caller's job) [T', h, w, z_dim] ->
  // [1 + 4(T'-1), 8h, 8w, 3], clamped to [-1, 1] as diffusers' decode does.
  Tensor decode(const Tensor& z) const;
  const WanVaeConfig& config() const { return cfg_; }
  bool has_encoder() const { return encoder_ != nullptr; }

 private:
  WanVaeConfig cfg_;
  std::unique_ptr<wan::Encoder> encoder_;
  std::unique_ptr<wan::Decoder> decoder_;
  Conv2d quant_, post_quant_;  // 1x1x1: per-pixel 1x1 convolutions
};

// The original Wan 2.1 / ComfyUI layout (Wan2.1_VAE.pth, wan_2.1_vae.safetensors,
// Comfy-Org qwen_image_vae.safetensors): `encoder.conv1`, `encoder.downsamples.N`,
// `*.middle.{0,1,2}`, `*.head.{0,2}`, `decoder.upsamples.N`, `conv1`/`conv2` =
// quant/post_quant convs. Detected by tensor names.
bool is_wan_vae_original(const WeightStore& w);
// The same tensors exposed under diffusers' names (the store's files are
// shared; the original names stay visible too).
WeightStore wan_vae_weights_from_original(const WeightStore& w);
// One original name -> its diffusers name ("" when it is not a VAE tensor).
// num_res_blocks: residual blocks per level (the decoder has one more).
std::string wan_vae_diffusers_name(const std::string& original, int64_t num_res_blocks);

}  // namespace vg
