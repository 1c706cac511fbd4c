// Qwen-Image transformer (diffusers QwenImageTransformer2DModel): an MMDiT of
// dual-stream blocks over [text ; image] tokens, read under diffusers' names
// (the names of ComfyUI's single files and city96's GGUFs too).
#pragma once
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "io/tensor_file.h"
#include "models/blocks.h"

namespace vg {

struct QwenImageConfig {  // defaults: Qwen/Qwen-Image
  int64_t patch_size = 2;
  int64_t in_channels = 64;  // packed: 16 latent channels x 2 x 2
  int64_t out_channels = 16;
  int64_t num_layers = 60;
  int64_t attention_head_dim = 128;
  int64_t num_attention_heads = 24;
  int64_t joint_attention_dim = 3584;  // Qwen2.5-VL-7B hidden size
  std::vector<int64_t> axes_dims_rope{16, 56, 56};

  int64_t inner_dim() const { return attention_head_dim * num_attention_heads; }
  int64_t out_features() const { return patch_size * patch_size * out_channels; }
  bool operator==(const QwenImageConfig&) const = default;

  static QwenImageConfig from_json_file(const std::string& path);
  // `source` names the config in error messages. Variants this code does not
  // implement (zero_cond_t, use_additional_t_cond, use_layer3d_rope) fail
  // unsupported_model.
  static QwenImageConfig from_json(const nlohmann::json& j, const std::string& source);
  // Single files carry no config: depth = number of transformer_blocks,
  // widths from img_in / txt_in / norm_q / proj_out (patch 2, as every
  // Qwen-Image). RoPE axes: head dim 128 -> (16, 56, 56); otherwise three even
  // parts, the spare pairs to the spatial axes first (16 -> (4, 6, 6)).
  static QwenImageConfig from_weights(const WeightStore& w);
  // Fails (corrupt_file) unless the fields are consistent.
  void validate(const std::string& source) const;
};

// Optional captures of intermediate stages (diffusers' names).
struct QwenImageTrace {
  Tensor temb;                               // time_text_embed [B, D]
  Tensor img_in;                             // img_in(img) [B, L, D]
  Tensor txt_norm;                           // txt_norm(txt) [B, S, joint]
  Tensor txt_in;                             // txt_in(txt_norm) [B, S, D]
  Tensor img_rope_cos, img_rope_sin;         // [L, head_dim], each pair's value twice
  Tensor txt_rope_cos, txt_rope_sin;         // [S, head_dim]
  std::vector<Tensor> block_txt, block_img;  // after each block
  Tensor norm_out;                           // norm_out(img, temb) [B, L, D]
};

class QwenImageTransformer {
 public:
  // Weights under diffusers' names; q/k/v of each stream are fused at load.
  QwenImageTransformer(const QwenImageConfig& cfg, const WeightStore& w);
  // img: packed latents [B, h*w, in_channels] on an h x w token grid (features
  // (c, ph, pw)); txt: text states [B, S, joint_attention_dim], every row valid
  // (pass each prompt alone: padded rows would be attended to); timestep:
  // sigma in 0..1 (the model multiplies by 1000), the same for the batch.
  // Returns [B, h*w, patch*patch*out_channels].
  Tensor forward(const Tensor& img, const Tensor& txt, float timestep, int64_t h, int64_t w,
                 QwenImageTrace* trace = nullptr) const;
  const QwenImageConfig& config() const { return cfg_; }

 private:
  struct Stream {  // one stream of a block
    Linear mod, qkv, out, mlp0, mlp2;
    Tensor q_norm, k_norm;
  };
  struct Block {
    Stream img, txt;
  };
  void block(const Block& blk, Tensor& img, Tensor& txt, const Tensor& temb_silu, const Tensor& cos,
             const Tensor& sin) const;

  QwenImageConfig cfg_;
  bool bf16_ = false;
  Linear img_in_, txt_in_, time_1_, time_2_, norm_out_, proj_out_;
  Tensor txt_norm_;
  std::vector<Block> blocks_;
};

// The RoPE positions of the joint sequence [text ; image] for an h x w token
// grid and s text tokens: [s + h*w, 3] (frame, row, column). Image rows and
// columns are centred (-(h - h/2) .. h/2 - 1); text token j sits at
// max(h/2, w/2) + j on all three axes.
Tensor qwenimage_positions(int64_t h, int64_t w, int64_t s);

// Single files (ComfyUI's qwen_image_*.safetensors, city96's GGUFs): diffusers'
// names, possibly under kQwenImagePrefix. Detected by transformer_blocks.0.
// img_mod.1.weight, txt_norm.weight and img_in.weight.
inline constexpr const char* kQwenImagePrefix = "model.diffusion_model.";
bool is_qwenimage_file(const TensorFile& f);
// The file's transformer weights under the bare names (prefix stripped).
// corrupt_file when `f` is not a Qwen-Image transformer.
WeightStore qwenimage_file_weights(std::shared_ptr<TensorFile> f);

}  // namespace vg
