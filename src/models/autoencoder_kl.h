// AutoencoderKL (the SD VAE): encoder to a diagonal Gaussian posterior and
// decoder back to pixels, built from diffusers' config.json.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "core/arena.h"
#include "models/blocks.h"

namespace vg {

struct VaeConfig {
  int64_t in_channels = 3, out_channels = 3, latent_channels = 4;
  std::vector<int64_t> block_out_channels{128, 256, 512, 512};
  int64_t layers_per_block = 2;
  int norm_num_groups = 32;
  float scaling_factor = 0.18215f;
  float shift_factor = 0.0f;
  // FLUX/SD3's 16-channel VAEs have no 1x1 quant convs around the latent.
  bool use_quant_conv = true, use_post_quant_conv = true;
  static VaeConfig from_json_file(const std::string& path);
  // `path` names the source in error messages.
  static VaeConfig from_json(const nlohmann::json& j, const std::string& path);
};

struct Posterior {
  Tensor mean, logvar, std;  // NHWC [N,h,w,latent]
};

class AutoencoderKL {
 public:
  AutoencoderKL(const VaeConfig& cfg, const WeightStore& w, bool with_encoder = true);
  // z: NHWC latents *already divided* by the scaling factor -> image NHWC in ~[-1,1].
  // Activations come from an arena planned by a dry run (core/arena.h).
  Tensor decode(const Tensor& z) const;
  // The plan of the last decode (or decoded tile): its peak, before it ran.
  std::optional<ArenaStats> decode_arena_stats() const { return planned_decode_.last_stats(); }
  std::optional<ArenaStats> encode_arena_stats() const { return planned_encode_.last_stats(); }
  // diffusers' enable_vae_tiling(): tiles of `tile` latents (512 pixels) at a
  // stride of tile * (1 - overlap), each normalised on its own and
  // cross-faded into its top and left neighbours over overlap * tile pixels.
  // Memory is bounded by one tile whatever the image size.
  Tensor decode_tiled(const Tensor& z, int64_t tile = 64, float overlap = 0.25f) const;
  // The encoder's counterpart (tile in pixels).
  Posterior encode_tiled(const Tensor& image, int64_t tile = 512, float overlap = 0.25f) const;
  // tiling: "off", "on", or "auto" (tiles when the latent exceeds 96x96,
  // i.e. images above 768x768).
  Tensor decode_with(const Tensor& z, const std::string& tiling) const;
  Posterior encode_with(const Tensor& image, const std::string& tiling) const;
  // image NHWC in [-1,1] -> posterior (logvar clamped to [-30, 20]).
  Posterior encode(const Tensor& image) const;
  bool has_encoder() const { return has_encoder_; }
  const VaeConfig& config() const { return cfg_; }
  int64_t scale() const { return int64_t{1} << (cfg_.block_out_channels.size() - 1); }
  double decode_flops(int64_t n, int64_t h, int64_t w) const;

 private:
  struct Stage {
    std::vector<ResnetBlock> resnets;
    std::optional<Conv2d> resample;
  };
  struct Mid {
    std::vector<ResnetBlock> resnets;
    std::vector<VaeAttention> attn;
  };
  Tensor decode_pass(const Tensor& z) const;
  Tensor encode_moments(const Tensor& image) const;

  VaeConfig cfg_;
  PlannedPass planned_decode_, planned_encode_;
  bool has_encoder_ = false;
  Conv2d enc_in_, enc_out_, quant_, post_quant_, dec_in_, dec_out_;
  GroupNormParams enc_norm_, dec_norm_;
  std::vector<Stage> down_, up_;
  Mid enc_mid_, dec_mid_;
};

}  // namespace vg
