// FLUX.1 transformer (diffusers FluxTransformer2DModel), reading the weights
// under BFL's original names (fused qkv per stream, fused single-block
// linear1). A diffusers folder is exposed under those names by
// flux_weights_from_diffusers (models/flux_names.h).
#pragma once
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "models/blocks.h"

namespace vg {

struct FluxConfig {
  int64_t in_channels = 64;
  int64_t num_layers = 19;  // double-stream blocks
  int64_t num_single_layers = 38;
  int64_t attention_head_dim = 128;
  int64_t num_attention_heads = 24;
  int64_t joint_attention_dim = 4096;   // T5 width
  int64_t pooled_projection_dim = 768;  // CLIP pooled width
  bool guidance_embeds = true;
  std::vector<int64_t> axes_dims_rope{16, 56, 56};
  int64_t out_channels = 64;  // config null -> in_channels

  int64_t inner_dim() const { return attention_head_dim * num_attention_heads; }
  bool operator==(const FluxConfig&) const = default;

  static FluxConfig from_json_file(const std::string& path);
  // `path` names the source in error messages.
  static FluxConfig from_json(const nlohmann::json& j, const std::string& path);
  // Everything from the BFL tensor names/shapes (single files carry no
  // config). Head dim = length of double_blocks.0.img_attn.norm.query_norm.scale.
  // The RoPE axes cannot be read from weights; the rule:
  //   1. `axes_hint` when given (e.g. a config.json beside the file); it must
  //      sum to the head dim;
  //   2. head dim 128 (every real FLUX.1): BFL's [16, 56, 56];
  //   3. otherwise three even parts as equal as possible, the spare pairs
  //      going to the spatial axes (1 and 2) first: 16 -> [4, 6, 6].
  static FluxConfig from_weights(const WeightStore& w, const std::vector<int64_t>& axes_hint = {});
  // Fails (corrupt_file) unless the fields are consistent.
  void validate(const std::string& source) const;
};

// Optional captures of intermediate stages (diffusers' names in comments).
struct FluxTrace {
  Tensor temb;                                 // conditioning vector [B, D]
  Tensor x_embedder;                           // img_in(img) [B, L, D]
  Tensor context_embedder;                     // txt_in(txt) [B, S, D]
  Tensor rope_cos, rope_sin;                   // [S+L, head_dim]
  std::vector<Tensor> double_img, double_txt;  // after each double block: hidden / encoder_hidden
  std::vector<Tensor> single_img, single_txt;  // after each single block (the joint stream split)
  Tensor norm_out;                             // final modulated norm of the image tokens [B, L, D]
};

class FluxTransformer {
 public:
  FluxTransformer(const FluxConfig& cfg, const WeightStore& w);
  // img: packed latents [B, L, in_channels]; txt: T5 states [B, S, joint];
  // pooled: CLIP pooled [B, pooled]; timestep: B (or 1) values = sigma (the
  // model multiplies by 1000); guidance: B (or 1) values, or empty for a model
  // without guidance_embeds (ignored by such a model); img_ids [L, 3],
  // txt_ids [S, 3]. Returns [B, L, out_channels].
  Tensor forward(const Tensor& img, const Tensor& txt, const Tensor& pooled,
                 const std::vector<float>& timestep, const std::vector<float>& guidance,
                 const Tensor& img_ids, const Tensor& txt_ids, FluxTrace* trace = nullptr) const;
  const FluxConfig& config() const { return cfg_; }

 private:
  struct Stream {  // one stream of a double block
    Linear mod, qkv, proj, mlp0, mlp2;
    Tensor q_norm, k_norm;
  };
  struct DoubleBlock {
    Stream img, txt;
  };
  struct SingleBlock {
    Linear mod, linear1, linear2;
    Tensor q_norm, k_norm;
  };
  Tensor conditioning(const Tensor& pooled, const std::vector<float>& timestep,
                      const std::vector<float>& guidance, int64_t batch) const;
  void double_block(const DoubleBlock& blk, Tensor& img, Tensor& txt, const Tensor& temb_silu,
                    const Tensor& cos, const Tensor& sin) const;
  void single_block(const SingleBlock& blk, Tensor& x, const Tensor& temb_silu, const Tensor& cos,
                    const Tensor& sin) const;

  FluxConfig cfg_;
  bool bf16_ = false;
  Linear img_in_, txt_in_, time_1_, time_2_, guidance_1_, guidance_2_, vector_1_, vector_2_;
  Linear final_mod_, final_linear_;
  std::vector<DoubleBlock> double_;
  std::vector<SingleBlock> single_;
};

}  // namespace vg
