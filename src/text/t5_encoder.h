// T5 / UMT5 encoder (transformers' T5EncoderModel / UMT5EncoderModel): FLUX's
// and SD3's text_encoder_2/3 (T5 v1.1 XXL), Wan's UMT5-XXL.
#pragma once
#include <memory>
#include <mutex>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "backend/cpu/layers.h"
#include "backend/cpu/ops.h"
#include "io/weights.h"

namespace vg {

struct T5Config {
  int64_t d_model = 4096, d_kv = 64, d_ff = 10240, num_layers = 24, num_heads = 64;
  int64_t relative_attention_num_buckets = 32, relative_attention_max_distance = 128;
  int64_t vocab_size = 32128;
  float layer_norm_epsilon = 1e-6f;
  // feed_forward_proj "gated-gelu" (v1.1, UMT5): wo(act(wi_0 x) * wi_1 x); "relu" (original T5): wo(relu(wi
  // x)).
  bool gated = true;
  enum class Act { kRelu, kGeluTanh, kGelu, kSilu } act = Act::kGeluTanh;
  // model_type "umt5": every block has its own relative_attention_bias (T5: block 0's, shared).
  bool per_layer_bias = false;
  static T5Config from_json_file(const std::string& path);
  // `path` names the source in error messages.
  static T5Config from_json(const nlohmann::json& j, const std::string& path);
};

class T5Encoder {
 public:
  // Every weight is checked (present, right shape) here. Without `lazy` the
  // weights are converted now; with it, on the first encode. Names as the Hub
  // stores them under `prefix` (`shared.weight` when `encoder.embed_tokens.weight` is absent).
  T5Encoder(const T5Config& cfg, const WeightStore& w, const std::string& prefix = "", bool lazy = false);

  // ids: B rows of equal length. All tokens attend to all (FluxPipeline and
  // SD3 pass no mask). -> last_hidden_state [B,S,d_model] float32.
  Tensor encode(const std::vector<std::vector<int32_t>>& ids) const;
  // With an attention mask given as each row's number of valid (leading)
  // tokens, as Wan passes it for UMT5: keys at or past valid_lengths[b] get no weight.
  Tensor encode(const std::vector<std::vector<int32_t>>& ids,
                const std::vector<int64_t>& valid_lengths) const;
  // The hidden state after `blocks` blocks (0 = the embeddings), without the final norm (tests, debugging).
  Tensor hidden_after(const std::vector<std::vector<int32_t>>& ids, int64_t blocks) const;
  const T5Config& config() const { return cfg_; }

  // false: the converted weights are made block by block during each encode
  // and dropped right after their block has run, so T5-XXL (4.7B parameters)
  // never holds more than one block's compute copy; true keeps them all.
  void set_keep_weights(bool keep) { keep_ = keep; }
  bool weights_loaded() const;
  void release_weights() const;

 private:
  struct Block {
    Tensor ln_attn, ln_ff;  // RMSNorm scales
    Tensor rel_bias;        // [buckets, heads], or empty (T5 blocks after the first)
    Linear q, k, v, o, wi0, wi1, wo;
  };
  struct Weights {
    Tensor embed, final_ln;
    std::vector<std::unique_ptr<Block>> blocks;  // null = not made (keep_ false)
  };
  std::string embed_name() const;
  void check_shape(const std::string& name, const Shape& shape) const;
  std::unique_ptr<Block> load_block(int64_t i, bool check_only) const;
  Tensor run(const std::vector<std::vector<int32_t>>& ids, const std::vector<int64_t>* valid, int64_t blocks,
             bool final_norm) const;
  // Position bias [heads, S, S] from a [buckets, heads] table.
  Tensor position_bias(const Tensor& table, int64_t s) const;

  T5Config cfg_;
  WeightStore src_;
  std::string prefix_;
  bool keep_ = true;
  mutable std::mutex mu_;
  mutable std::unique_ptr<Weights> w_;
};

// T5's bidirectional relative position bucket for key - query = rel (as transformers computes it, float32
// log).
int64_t t5_relative_bucket(int64_t rel, int64_t num_buckets, int64_t max_distance);

}  // namespace vg
