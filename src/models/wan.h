// Wan transformer (diffusers WanTransformer3DModel; Wan 2.1 T2V and Wan 2.2
// TI2V-5B): video latents patchified by a (1, 2, 2) Conv3d into tokens in
// (frame, row, column) order; per block a modulated self-attention with q/k
// RMSNorm across all heads and 3-axis RoPE, an unmodulated cross-attention on
// the text (no mask, no gate), a modulated GELU(tanh) FFN. The modulation is
// per token (TI2V's expanded timesteps: image-to-video gives frame-0 tokens
// t = 0), so it is computed once per distinct timestep value and broadcast.
// Computed from the original Wan names (blocks.N.self_attn.q, head.head, ...);
// a diffusers folder is exposed under them by wan_names.h.
#pragma once
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "models/blocks.h"

namespace vg {

struct WanTransformerConfig {
  // Wan2.2-TI2V-5B-Diffusers' transformer/config.json.
  std::vector<int64_t> patch_size{1, 2, 2};  // (t, h, w)
  int64_t num_attention_heads = 24, attention_head_dim = 128;
  int64_t in_channels = 48, out_channels = 48, text_dim = 4096, freq_dim = 256, ffn_dim = 14336,
          num_layers = 30;
  bool cross_attn_norm = true;
  bool qk_norm = true;  // "rms_norm_across_heads"; false = none
  float eps = 1e-6f;
  int64_t rope_max_seq_len = 1024;

  int64_t dim() const { return num_attention_heads * attention_head_dim; }
  int64_t patch_volume() const { return patch_size[0] * patch_size[1] * patch_size[2]; }
  // RoPE split of the head dim: h = w = 2 * (hd / 6), t = the rest.
  std::vector<int64_t> rope_axes() const;
  bool operator==(const WanTransformerConfig&) const = default;

  // image_dim / added_kv_proj_dim / pos_embed_seq_len non-null (the Wan 2.1
  // I2V / FLF2V image encoder path) -> unsupported_model.
  static WanTransformerConfig from_json(const nlohmann::json& j, const std::string& source);
  static WanTransformerConfig from_json_file(const std::string& path);
  // From the original tensor shapes (single files carry no config): widths
  // from patch_embedding / text_embedding.0 / time_embedding.0 / ffn.0 /
  // head.head, depth by counting blocks. The head count is not in the
  // weights: `head_dim_hint` when given, else head dim 128 when the width is a
  // multiple of 128 (every released Wan model), else two heads (test-size
  // models). Image-encoder weights (img_emb, cross_attn.k_img) -> unsupported_model.
  static WanTransformerConfig from_weights(const WeightStore& w, int64_t head_dim_hint = 0);
  void validate(const std::string& source) const;
};

// Text prepared once per prompt: the text embedding of every row and each
// block's cross-attention K (after norm_k) and V.
struct WanContext {
  Tensor text_embedded;                  // [1, L, D]
  std::vector<Tensor> cross_k, cross_v;  // per block, [1, L, D]
};

// Intermediate tensors of one forward (names as the fixture stores them), per token.
struct WanTrace {
  Tensor temb;                     // [N, D]
  Tensor timestep_proj;            // [N, 6D]
  Tensor patch_embedding_tokens;   // [N, D]
  std::vector<Tensor> block_out;   // per block, [N, D]
  int64_t distinct_timesteps = 0;  // how many time embeddings / modulations were computed
};

// RoPE tables cos/sin [F*gh*gw, head_dim] for a token grid of F x gh x gw
// (positions from 0 in (f, y, x) order, angles in float64, adjacent pairs).
void wan_rope_tables(const WanTransformerConfig& cfg, int64_t f, int64_t gh, int64_t gw, Tensor& cos,
                     Tensor& sin);

class WanTransformer {
 public:
  WanTransformer(const WanTransformerConfig& cfg, const WeightStore& w);
  // prompt_embeds: [L, text_dim] (or [1, L, text_dim]); shape_mismatch otherwise.
  WanContext prepare_text(const Tensor& prompt_embeds) const;
  // One item (CFG runs two calls). x: latents [F, h, w, in_channels] (frames
  // leading, channels last); t: per-token timesteps [N], N = F*(h/2)*(w/2) in
  // (f, y, x) order. Returns the prediction [F, h, w, out_channels].
  Tensor forward(const Tensor& x, const std::vector<float>& t, const WanContext& ctx,
                 WanTrace* trace = nullptr) const;
  const WanTransformerConfig& config() const { return cfg_; }

 private:
  struct Block {
    Linear q, k, v, o, cq, ck, cv, co, ffn0, ffn2;
    Tensor norm_q, norm_k, cnorm_q, cnorm_k, norm3_w, norm3_b, modulation;  // modulation [6D]
  };
  Block load_block(const WeightStore& w, const std::string& p) const;
  void run_block(const Block& b, size_t index, Tensor& x, const Tensor& mod, const std::vector<int64_t>& idx,
                 const Tensor& cos, const Tensor& sin, const WanContext& ctx) const;

  WanTransformerConfig cfg_;
  bool bf16_ = false;
  Linear patch_, t1_, t2_, tproj_, txt1_, txt2_, head_;
  Tensor head_mod_;  // [2D]
  std::vector<Block> blocks_;
};

}  // namespace vg
