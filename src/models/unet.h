// UNet2DConditionModel (SD 1.x / 2.x family), built from diffusers' config.json.
#pragma once
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "core/arena.h"
#include "models/blocks.h"

namespace vg {

struct UNetConfig {
  int64_t in_channels = 4, out_channels = 4;
  std::vector<int64_t> block_out_channels{320, 640, 1280, 1280};
  std::vector<std::string> down_block_types, up_block_types;
  std::string mid_block_type = "UNetMidBlock2DCrossAttn";
  std::vector<int64_t> layers_per_block;        // per down block
  std::vector<int64_t> num_heads;               // per down block
  std::vector<int64_t> cross_attention_dim;     // per down block
  std::vector<int64_t> transformer_layers;      // per down block
  bool use_linear_projection = false;
  bool flip_sin_to_cos = true;
  float freq_shift = 0;
  int norm_num_groups = 32;
  float norm_eps = 1e-5f;
  int64_t sample_size = 64;
  // SDXL micro-conditioning (addition_embed_type "text_time"): pooled text
  // embeds + sinusoidal time ids through add_embedding, added to the time
  // embedding. 0 = none.
  int64_t addition_time_embed_dim = 0;
  int64_t projection_class_embeddings_input_dim = 0;
  bool has_text_time() const { return addition_time_embed_dim > 0; }
  static UNetConfig from_json_file(const std::string& path);
  // `path` names the source in error messages.
  static UNetConfig from_json(const nlohmann::json& j, const std::string& path);
};

// SDXL's added conditioning for one UNet batch: text_embeds [B,P] and
// time_ids [B,n] (original size, crop, target size or aesthetic score).
struct AddedCond {
  Tensor text_embeds, time_ids;
  bool empty() const { return text_embeds.empty(); }
};

class UNet {
 public:
  UNet(const UNetConfig& cfg, const WeightStore& w);
  // sample: [B,H,W,Cin] (NHWC); timesteps: 1 or B values; context [B,S,Cc].
  // The activations come from an arena planned by a dry run the first time a
  // shape is seen (set VG_ARENA=0 to use the tensor pool instead).
  Tensor forward(const Tensor& sample, const std::vector<float>& timesteps,
                 const Tensor& context, const AddedCond& added = {}) const;
  // The plan for the last shape forward() ran (null before the first call):
  // arena size, most bytes alive at once, allocations served and missed.
  std::optional<ArenaStats> arena_stats() const { return planned_.last_stats(); }
  // Pieces exposed for tests.
  Tensor time_proj(const std::vector<float>& timesteps, int64_t batch) const;
  Tensor time_embedding(const Tensor& proj) const;
  // SDXL: add_embedding(cat(text_embeds, time_proj(time_ids))) [B,temb]; the
  // sinusoidal time-id projection is written to *time_id_proj when given.
  Tensor added_embedding(const AddedCond& added, Tensor* time_id_proj = nullptr) const;
  const UNetConfig& config() const { return cfg_; }
  // Latent size must be a multiple of this.
  int64_t size_multiple() const;
  double flops(int64_t batch, int64_t h, int64_t w, int64_t ctx_len) const;

 private:
  struct Stage {
    std::vector<ResnetBlock> resnets;
    std::vector<SpatialTransformer> attns;
    std::optional<Conv2d> resample;
  };
  Tensor forward_pass(const Tensor& sample, const std::vector<float>& timesteps, const Tensor& context,
                      const AddedCond& added) const;

  UNetConfig cfg_;
  PlannedPass planned_;
  Conv2d conv_in_, conv_out_;
  Linear time_1_, time_2_, add_1_, add_2_;
  GroupNormParams norm_out_;
  std::vector<Stage> down_, up_;
  Stage mid_;
};

}  // namespace vg
