// The Wan causal 3-D VAE (diffusers AutoencoderKLQwenImage and
// AutoencoderKLWan, both its 2.1 and 2.2 forms): video frames <-> latent
// frames, 8x in space (16x for Wan 2.2 TI2V, which patchifies 2x2 first) and
// 4x in time (1+4k frames <-> 1+k latent frames). Frames are processed in chunks
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

struct WanVaeConfig {  // diffusers AutoencoderKLQwenImage / AutoencoderKLWan config.json fields
  int64_t base_dim = 96, z_dim = 16, num_res_blocks = 2;
  // Wan 2.2 (is_residual): residual down/up blocks with AvgDown3D / DupUp3D
  // shortcuts, a decoder of its own width (decoder_base_dim; 0 = base_dim),
  // and frames patchified patch_size x patch_size into channels around the
  // network (in/out_channels = 3 * patch_size^2, or 3).
  bool is_residual = false;
  int64_t decoder_base_dim = 0, patch_size = 1, in_channels = 3, out_channels = 3;
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
  // single file without a config; latents_mean/std are the published ones of
  // that z_dim (Wan 2.1's 16, Wan 2.2's 48).
  static WanVaeConfig from_weights(const WeightStore& w);
  int64_t spatial_scale() const {  // 8; 16 for Wan 2.2 TI2V
    return (int64_t{1} << temperal_downsample.size()) * patch_size;
  }
  int64_t temporal_scale() const;  // 4 with two temporal downsamples
  int64_t decoder_dim() const { return decoder_base_dim > 0 ? decoder_base_dim : base_dim; }
};

namespace wan {
class Stage;
}  // namespace wan

// Spatial tiling of the decode (diffusers' enable_tiling on AutoencoderKLWan):
// tiles of `tile` pixels (tile / spatial_scale latents) every `stride` pixels,
// each decoded over all frames with its own time caches, neighbours cross-faded
// over the tile - stride overlap. Both multiples of spatial_scale(), stride <= tile.
struct WanTiling {
  bool enabled = false;
  int64_t tile = 256, stride = 192;
};
// mode "on" -> true, "off" -> false, "auto" -> true above 512x512 pixels
// (bounded decode memory for 480p / 720p video); anything else is invalid_argument.
bool wan_vae_tiling_wanted(const std::string& mode, int64_t width, int64_t height);
// invalid_argument unless s <= stride <= tile, both multiples of s (the spatial scale).
void check_wan_tiling(const WanTiling& tiling, int64_t s);

class WanVae {
 public:
  // Weights under diffusers' names (see wan_vae_weights_from_original).
  WanVae(const WanVaeConfig& cfg, const WeightStore& w, bool with_encoder = true);
  ~WanVae();
  WanVae(WanVae&&) noexcept;
  WanVae& operator=(WanVae&&) noexcept;

  // video: frames in [-1,1], NHWC per frame: [T, H, W, 3], T = 1 + 4k (else
  // shape_mismatch); H, W multiples of s = spatial_scale(). The posterior
  // (logvar clamped to [-30, 20]): [1+k, H/s, W/s, z_dim].
  Posterior encode(const Tensor& video) const;
  // z: raw latents (z*std+mean is the caller's job) [T', h, w, z_dim] ->
  // [1 + 4(T'-1), s*h, s*w, 3], clamped to [-1, 1] as diffusers' decode does.
  // With tiling enabled and a latent larger than one tile, it decodes in
  // spatial tiles (WanTiling): memory grows with the tile, not the frame.
  Tensor decode(const Tensor& z, const WanTiling& tiling = {}) const;
  const WanVaeConfig& config() const { return cfg_; }
  bool has_encoder() const { return encoder_ != nullptr; }

 private:
  WanVaeConfig cfg_;
  std::unique_ptr<wan::Stage> encoder_, decoder_;
  Conv2d quant_, post_quant_;  // 1x1x1: per-pixel 1x1 convolutions

  // post_quant_conv + the decoder over all frames of z with a fresh pass:
  // [1 + 4(T'-1), h*s/p, w*s/p, 3p^2], patchified, not clamped.
  Tensor decode_patchified(const Tensor& z) const;
  Tensor decode_tiled(const Tensor& z, const WanTiling& tiling) const;  // same output, in tiles
};

// The original Wan / ComfyUI layout (Wan2.1_VAE.pth, wan_2.1_vae.safetensors,
// Comfy-Org qwen_image_vae.safetensors): `encoder.conv1`, `encoder.downsamples.N`,
// `*.middle.{0,1,2}`, `*.head.{0,2}`, `decoder.upsamples.N`, `conv1`/`conv2` =
// quant/post_quant convs; Wan2.2_VAE.pth nests its levels
// (`encoder.downsamples.I.downsamples.J`, `decoder.upsamples.I.upsamples.J`).
// Detected by tensor names.
bool is_wan_vae_original(const WeightStore& w);
// The same tensors exposed under diffusers' names (the store's files are
// shared; the original names stay visible too).
WeightStore wan_vae_weights_from_original(const WeightStore& w);
// One original name -> its diffusers name ("" when it is not a VAE tensor).
// num_res_blocks: residual blocks per level (the decoder has one more).
std::string wan_vae_diffusers_name(const std::string& original, int64_t num_res_blocks);

}  // namespace vg
