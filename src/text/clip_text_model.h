// CLIP text transformer (transformers' CLIPTextModel): SD1's CLIP-L
// (quick_gelu) and SD2's OpenCLIP-H (gelu), configured from config.json.
#pragma once
#include <string>
#include <vector>

#include "backend/cpu/layers.h"
#include "backend/cpu/ops.h"
#include "io/weights.h"

namespace vg {

struct ClipTextConfig {
  int64_t hidden_size = 768, intermediate_size = 3072, num_heads = 12, num_layers = 12;
  int64_t max_positions = 77, vocab_size = 49408;
  float layer_norm_eps = 1e-5f;
  Act act = Act::kQuickGelu;
  static ClipTextConfig from_json_file(const std::string& path);
};

class ClipTextModel {
 public:
  ClipTextModel(const ClipTextConfig& cfg, const WeightStore& w, const std::string& prefix = "");

  // ids: B rows of max_positions ids. clip_skip follows A1111: 1 = last layer,
  // 2 = penultimate; the final LayerNorm is applied either way. -> [B,T,C]
  Tensor encode(const std::vector<std::vector<int32_t>>& ids, int clip_skip = 1) const;
  // Hidden state after `layers` encoder layers, without the final LayerNorm.
  Tensor hidden_after(const std::vector<std::vector<int32_t>>& ids, int64_t layers) const;
  Tensor final_norm(const Tensor& h) const;
  const ClipTextConfig& config() const { return cfg_; }

 private:
  struct Layer {
    Tensor ln1_w, ln1_b, ln2_w, ln2_b;
    Linear q, k, v, out, fc1, fc2;
  };
  ClipTextConfig cfg_;
  Tensor tok_emb_, pos_emb_, final_w_, final_b_;
  std::vector<Layer> layers_;
};

}  // namespace vg
