// SD3 / SD3.5 MMDiT transformer (diffusers SD3Transformer2DModel), computed
// from Stability's single-file weight names (`joint_blocks.N.x_block.attn.qkv`
// ...; the loader strips `model.diffusion_model.`). A diffusers `transformer/`
// folder is exposed under those names by mmdit_names.h.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "models/blocks.h"

namespace vg {

struct MmditConfig {
  // diffusers' SD3Transformer2DModel defaults (SD3-medium).
  int64_t sample_size = 128, patch_size = 2, in_channels = 16, out_channels = 16, num_layers = 18;
  int64_t attention_head_dim = 64, num_attention_heads = 18, joint_attention_dim = 4096;
  int64_t caption_projection_dim = 1152, pooled_projection_dim = 2048, pos_embed_max_size = 96;
  std::string qk_norm;                        // "rms_norm" (SD3.5) or "" (none: SD3-medium)
  std::vector<int64_t> dual_attention_layers; // MMDiT-X blocks (SD3.5-medium: 0..12)

  int64_t hidden() const { return attention_head_dim * num_attention_heads; }
  bool dual(int64_t block) const;
  bool operator==(const MmditConfig&) const = default;

  static MmditConfig from_json(const nlohmann::json& j, const std::string& path);
  static MmditConfig from_json_file(const std::string& path);
  // From Stability single-file tensor shapes: depth = number of joint_blocks,
  // hidden = x_embedder.proj out channels, head_dim = ln_q size when qk norm
  // exists, else 64 (Stability's MMDiT has heads = depth, hidden = 64*depth),
  // heads = hidden / head_dim; dual layers = blocks with x_block.attn2; qk
  // norm = ln_q present; pos_embed_max_size = sqrt(pos_embed rows).
  // sample_size is read back from the stored sin-cos table (its grid step is
  // (sample_size/patch) / pos_embed_max_size); 128 when the table is absent.
  static MmditConfig from_weights(const WeightStore& w);
};

// Intermediate tensors of one forward (tests compare them with diffusers).
struct MmditTrace {
  Tensor patch_embed;       // [B, T, D] incl. the cropped position table
  Tensor temb;              // [B, D]
  Tensor context_embedder;  // [B, S, D]
  std::vector<Tensor> block_hidden, block_context;  // after each block (context empty when it has none)
  Tensor norm_out;          // [B, T, D]
};

class MmditTransformer {
 public:
  MmditTransformer(const MmditConfig& cfg, const WeightStore& w);
  // latents: NHWC [B, h, w, in_channels] (the layout every engine uses for
  // latents, see pipelines/denoise.cpp); context [B, S, joint_attention_dim];
  // pooled [B, pooled_projection_dim]; timestep: 1 or B values on the 0..1000
  // scale. skip_layers: blocks bypassed (SD3.5 skip-layer guidance).
  // Returns NHWC [B, h, w, out_channels].
  Tensor forward(const Tensor& latents, const Tensor& context, const Tensor& pooled,
                 const std::vector<float>& timestep, const std::vector<int>& skip_layers = {},
                 MmditTrace* trace = nullptr) const;
  const MmditConfig& config() const { return cfg_; }

 private:
  // One stream (image "x_block" or text "context_block") of a joint block.
  struct Stream {
    Linear mod, qkv, proj, fc1, fc2;
    Tensor ln_q, ln_k;  // per-head RMSNorm scales (empty without qk norm)
  };
  struct Block {
    Stream x, c;
    bool dual = false, pre_only = false;  // pre_only: text gives only k, v
    Linear qkv2, proj2;                   // MMDiT-X image self-attention
    Tensor ln_q2, ln_k2;
  };
  Stream load_stream(const WeightStore& w, const std::string& p, int64_t mod_chunks, bool pre_only) const;
  Tensor embed_time(const Tensor& pooled, const std::vector<float>& timestep, int64_t batch) const;
  void run_block(const Block& b, Tensor& x, Tensor& c, const Tensor& silu_temb) const;

  MmditConfig cfg_;
  Conv2d patch_;
  Tensor pos_embed_;  // [max*max, D]
  Linear t1_, t2_, y1_, y2_, context_embedder_, final_mod_, final_linear_;
  std::vector<Block> blocks_;
  bool bf16_ = false;  // attention in bf16 too (w.compute_bf16())
};

}  // namespace vg
