// Qwen decoder language model used as a text encoder: transformers' Qwen3Model
// (Z-Image) and the language model of Qwen2.5-VL (Qwen-Image; text-only
// positions, where its multimodal RoPE reduces to 1-D RoPE).
#pragma once
#include <memory>
#include <mutex>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "backend/cpu/layers.h"
#include "io/weights.h"

namespace vg {

struct QwenTextConfig {
  std::string model_type = "qwen3";
  int64_t hidden_size = 2560, intermediate_size = 9728, num_layers = 36, num_heads = 32, num_kv_heads = 8;
  int64_t head_dim = 128, vocab_size = 151936;
  float rms_norm_eps = 1e-6f;
  double rope_theta = 1e6;
  // Qwen2.5-VL's rope_parameters.mrope_section (t, h, w halves of head_dim / 2). Kept for image
  // tokens later; text-only input gives every section the same position.
  std::vector<int64_t> mrope_section;
  static QwenTextConfig from_json_file(const std::string& path);
  // Reads a Qwen3 / Qwen2 / Qwen2.5-VL config (a VL config's text_config); `path` names it in messages.
  static QwenTextConfig from_json(const nlohmann::json& j, const std::string& path);
  // From the tensor shapes (ComfyUI's qwen_3_4b.safetensors / qwen_2.5_vl_7b.safetensors carry no
  // config): widths, depth, kv heads; head dim from q_norm (Qwen3) else 128 (every Qwen2.5 model);
  // "qwen3" with q/k norms, else "qwen2_5_vl"; rope theta 1e6 and eps 1e-6 as both families ship.
  static QwenTextConfig from_weights(const WeightStore& w, const std::string& prefix);
};

// The prefix before embed_tokens.weight in `w` ("", "model.", "model.language_model.",
// "language_model.model."); corrupt_file when none has it.
std::string qwen_text_prefix(const WeightStore& w);

class QwenTextEncoder {
 public:
  // Every weight is checked (present, right shape) here; without `lazy` they are
  // converted now, with it on the first call. Names as the Hub stores them, under
  // `prefix`; "auto" finds it ("" for Qwen3Model files, "model." for *ForCausalLM
  // and Qwen2.5-VL, "model.language_model." for transformers 5's VL layout).
  // q/k RMSNorms (Qwen3) and q/k/v biases (Qwen2.5) are used when the file has them.
  QwenTextEncoder(const QwenTextConfig& cfg, const WeightStore& w, const std::string& prefix = "auto",
                  bool lazy = false);

  // transformers' output_hidden_states entry `layer_index` for the first
  // `valid_len` tokens of `ids` (the rest is padding): [valid_len, hidden].
  // 0 = embeddings, k = output of decoder layer k-1, num_layers = the final
  // RMSNorm's output; negative counts from the end (-1 = final norm, as
  // Qwen-Image takes; -2 = the last layer's input, as Z-Image takes).
  // Causal attention makes the valid rows independent of the padding, so only
  // they are computed.
  Tensor hidden_states(const std::vector<int32_t>& ids, int64_t valid_len, int layer_index) const;
  const QwenTextConfig& config() const { return cfg_; }
  const std::string& prefix() const { return prefix_; }
  bool has_qk_norm() const { return qk_norm_; }
  bool has_qkv_bias() const { return qkv_bias_; }

  bool weights_loaded() const;
  void release_weights() const;

 private:
  struct Layer {
    Tensor ln_in, ln_post, q_norm, k_norm;
    Linear q, k, v, o, gate, up, down;
  };
  struct Weights {
    Tensor final_norm;
    std::vector<Layer> layers;
  };
  void check_shape(const std::string& name, const Shape& shape) const;
  void check_all() const;
  std::unique_ptr<Weights> load() const;
  // Embedding rows for ids (read row by row from the file: the table can be GBs).
  Tensor embed(const std::vector<int32_t>& ids, int64_t n) const;

  QwenTextConfig cfg_;
  WeightStore src_;
  std::string prefix_;
  bool qk_norm_ = false, qkv_bias_ = false;
  mutable std::mutex mu_;
  mutable std::unique_ptr<Weights> w_;
};

}  // namespace vg
