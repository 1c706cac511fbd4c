// CLIP text transformer (transformers' CLIPTextModel): SD1's CLIP-L
// (quick_gelu) and SD2's OpenCLIP-H (gelu), configured from config.json.
#pragma once
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "backend/cpu/layers.h"
#include "backend/cpu/ops.h"
#include "io/weights.h"

namespace vg {

struct ClipTextConfig {
  int64_t hidden_size = 768, intermediate_size = 3072, num_heads = 12, num_layers = 12;
  int64_t max_positions = 77, vocab_size = 49408;
  float layer_norm_eps = 1e-5f;
  Act act = Act::kQuickGelu;
  // CLIPTextModelWithProjection (SDXL's OpenCLIP bigG): text_projection
  // [projection_dim, hidden] without bias; 0 = no projection. OpenCLIP
  // files store it transposed ([hidden, projection_dim], used as x @ P).
  int64_t projection_dim = 0;
  bool projection_transposed = false;
  static ClipTextConfig from_json_file(const std::string& path);
  // `path` names the source in error messages.
  static ClipTextConfig from_json(const nlohmann::json& j, const std::string& path);
};

class ClipTextModel {
 public:
  // Every weight is checked (present, right shape) here. Without `lazy` the
  // weights are converted now; with it, on the first encode, so a model can
  // be opened without paying for its text encoder until a prompt needs it.
  ClipTextModel(const ClipTextConfig& cfg, const WeightStore& w, const std::string& prefix = "", bool lazy = false);

  // ids: B rows of max_positions ids. clip_skip follows A1111: 1 = last layer,
  // 2 = penultimate; the final LayerNorm is applied either way. -> [B,T,C]
  Tensor encode(const std::vector<std::vector<int32_t>>& ids, int clip_skip = 1) const;
  // Hidden state after `layers` encoder layers, without the final LayerNorm.
  Tensor hidden_after(const std::vector<std::vector<int32_t>>& ids, int64_t layers) const;
  // SDXL: the hidden state after `layers` layers (no final LayerNorm) and,
  // when `pooled` is given, transformers' pooled output: the final
  // LayerNorm'd state at each row's first highest id (EOS), projected by
  // text_projection when the model has one. -> [B,T,C]; *pooled [B,P].
  Tensor hidden_and_pooled(const std::vector<std::vector<int32_t>>& ids, int64_t layers, Tensor* pooled) const;
  const ClipTextConfig& config() const { return cfg_; }

  // false: the converted weights are dropped after each encode and made
  // again from the (memory-mapped) files when next needed. The text encoder
  // runs once per prompt, so this trades ~0.1-0.3 s per new prompt for its
  // whole compute copy (~470 MB float32 for CLIP-L) during denoising.
  void set_keep_weights(bool keep) { keep_ = keep; }
  bool weights_loaded() const;
  void release_weights() const;

 private:
  struct Layer {
    Tensor ln1_w, ln1_b, ln2_w, ln2_b;
    Linear q, k, v, out, fc1, fc2;
  };
  struct Weights {
    Tensor tok_emb, pos_emb, final_w, final_b;
    Tensor projection;  // [hidden, projection_dim] (x @ P), or empty
    std::vector<Layer> layers;
  };
  std::unique_ptr<Weights> load_weights(bool check_only = false) const;
  const Weights& ensure_weights() const;
  // Runs n_layers layers; *captured (when given) gets the state after capture_at layers.
  Tensor run_layers(const Weights& w, const std::vector<std::vector<int32_t>>& ids, int64_t n_layers,
                    int64_t capture_at = -1, Tensor* captured = nullptr) const;

  ClipTextConfig cfg_;
  WeightStore src_;
  std::string prefix_;
  bool keep_ = true;
  mutable std::mutex mu_;
  mutable std::unique_ptr<Weights> w_;
};

}  // namespace vg
