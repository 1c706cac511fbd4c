// Z-Image transformer (diffusers ZImageTransformer2DModel): a single-stream
// DiT whose image tokens pass a modulated "noise refiner" and caption tokens
// an unmodulated "context refiner" before the joint layers; sandwich RMSNorms,
// tanh gates, no shift; both streams padded to multiples of 32 with learned
// pad tokens; 3-axis RoPE (caption index, row, column). Computed from the
// original names (fused attention.qkv); a diffusers folder is exposed under
// them by zimage_names.h.
#pragma once
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "models/blocks.h"

namespace vg {

struct ZImageConfig {
  // Z-Image-Turbo's config.json.
  int64_t dim = 3840, n_heads = 30, n_layers = 30, n_refiner_layers = 2, cap_feat_dim = 2560;
  int64_t in_channels = 16, patch_size = 2, f_patch_size = 1;
  float norm_eps = 1e-5f;
  bool qk_norm = true;
  double rope_theta = 256.0, t_scale = 1000.0;
  std::vector<int64_t> axes_dims{32, 48, 48};

  int64_t head_dim() const { return dim / n_heads; }
  int64_t adaln_dim() const { return dim < 256 ? dim : 256; }  // diffusers' min(dim, ADALN_EMBED_DIM)
  int64_t patch_features() const { return patch_size * patch_size * f_patch_size * in_channels; }
  bool operator==(const ZImageConfig&) const = default;

  static ZImageConfig from_json(const nlohmann::json& j, const std::string& source);
  static ZImageConfig from_json_file(const std::string& path);
  // From the original tensor shapes (single files carry no config): dim from
  // x_embedder, head dim from q_norm (128 when absent), depths by counting
  // blocks, cap width from cap_embedder.1, patch 2. RoPE axes: `axes_hint`
  // when given, else Z-Image's [32, 48, 48] for head dim 128, else three even
  // parts, the spare pairs to the spatial axes; theta 256.
  static ZImageConfig from_weights(const WeightStore& w, const std::vector<int64_t>& axes_hint = {});
  void validate(const std::string& source) const;
};

// Intermediate tensors of one forward (names as the fixtures store them).
struct ZImageTrace {
  Tensor adaln_input;                // [1, adaln_dim]
  Tensor x_embedded;                 // x_embedder on the padded patches, before pad-token replacement
  Tensor x_after_noise_refiner;      // [1, Li, D]
  Tensor cap_embedded;               // before pad-token replacement
  Tensor cap_after_context_refiner;  // [1, Lc, D]
  Tensor unified_in, unified_after_layers, final_layer_out;  // [1, Li + Lc, D]
};

class ZImageTransformer {
 public:
  ZImageTransformer(const ZImageConfig& cfg, const WeightStore& w);
  // One item (CFG runs cond and uncond as two calls: the batch's padding mask
  // makes them independent in diffusers too). x: NHWC latents [1, h, w, C];
  // cap: the text encoder's valid states [n, cap_feat_dim]; t: the model's
  // timestep (1 - sigma). Returns the raw prediction, NHWC [1, h, w, C].
  Tensor forward(const Tensor& x, const Tensor& cap, float t, ZImageTrace* trace = nullptr) const;
  const ZImageConfig& config() const { return cfg_; }

 private:
  struct Block {
    Linear qkv, out, w1, w2, w3, mod;  // mod: absent in the context refiner
    Tensor q_norm, k_norm, attn_norm1, attn_norm2, ffn_norm1, ffn_norm2;
  };
  Block load_block(const WeightStore& w, const std::string& p, bool modulated) const;
  void run_block(const Block& b, Tensor& x, const Tensor& adaln, const Tensor& cos, const Tensor& sin) const;

  ZImageConfig cfg_;
  bool bf16_ = false;
  Linear x_embedder_, t1_, t2_, cap_linear_, final_mod_, final_linear_;
  Tensor cap_norm_, x_pad_, cap_pad_;
  std::vector<Block> noise_refiner_, context_refiner_, layers_;
};

}  // namespace vg
