// MmditConfig from diffusers' config.json or from Stability single-file shapes.
#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "models/config_util.h"
#include "models/mmdit.h"

namespace vg {

bool MmditConfig::dual(int64_t block) const {
  return std::find(dual_attention_layers.begin(), dual_attention_layers.end(), block) != dual_attention_layers.end();
}

namespace {

void validate(const MmditConfig& c, const std::string& src) {
  auto bad = [&](const std::string& what) {
    fail(ErrorCode::kCorruptFile, src + ": " + what + "; the transformer config does not describe an SD3 MMDiT");
  };
  if (c.patch_size <= 0 || c.in_channels <= 0 || c.out_channels <= 0 || c.num_layers <= 0 ||
      c.attention_head_dim <= 0 || c.num_attention_heads <= 0 || c.joint_attention_dim <= 0 ||
      c.pooled_projection_dim <= 0 || c.pos_embed_max_size <= 0)
    bad("sizes must be positive");
  if (c.caption_projection_dim != c.hidden())
    bad("caption_projection_dim " + std::to_string(c.caption_projection_dim) + " differs from heads*head_dim " +
        std::to_string(c.hidden()));
  if (!c.qk_norm.empty() && c.qk_norm != "rms_norm")
    fail(ErrorCode::kUnsupportedModel, src + ": qk_norm '" + c.qk_norm + "' is not supported (only rms_norm or none)");
  for (int64_t d : c.dual_attention_layers)
    if (d < 0 || d >= c.num_layers) bad("dual_attention_layers lists block " + std::to_string(d));
}

}  // namespace

MmditConfig MmditConfig::from_json_file(const std::string& path) {
  return from_json(read_json_file(path, "transformer"), path);
}

MmditConfig MmditConfig::from_json(const nlohmann::json& j, const std::string& path) {
  MmditConfig c;
  try {
    c.sample_size = j.value("sample_size", c.sample_size);
    c.patch_size = j.value("patch_size", c.patch_size);
    c.in_channels = j.value("in_channels", c.in_channels);
    c.out_channels = j.contains("out_channels") && !j["out_channels"].is_null() ? j["out_channels"].get<int64_t>()
                                                                                  : c.in_channels;
    c.num_layers = j.value("num_layers", c.num_layers);
    c.attention_head_dim = j.value("attention_head_dim", c.attention_head_dim);
    c.num_attention_heads = j.value("num_attention_heads", c.num_attention_heads);
    c.joint_attention_dim = j.value("joint_attention_dim", c.joint_attention_dim);
    c.caption_projection_dim = j.value("caption_projection_dim", c.caption_projection_dim);
    c.pooled_projection_dim = j.value("pooled_projection_dim", c.pooled_projection_dim);
    c.pos_embed_max_size = j.value("pos_embed_max_size", c.pos_embed_max_size);
    if (j.contains("qk_norm") && j["qk_norm"].is_string()) c.qk_norm = j["qk_norm"].get<std::string>();
    if (j.contains("dual_attention_layers") && j["dual_attention_layers"].is_array())
      c.dual_attention_layers = j["dual_attention_layers"].get<std::vector<int64_t>>();
  } catch (const nlohmann::json::exception& e) {
    fail(ErrorCode::kCorruptFile, "'" + path + "' has a field of the wrong type: " + e.what());
  }
  validate(c, "'" + path + "'");
  return c;
}

MmditConfig MmditConfig::from_weights(const WeightStore& w) {
  auto need = [&](const std::string& n, size_t rank) -> const Shape& {
    const TensorInfo* t = w.find(n);
    if (!t || t->shape.size() != rank)
      fail(ErrorCode::kCorruptFile, w.describe() + " lacks a " + std::to_string(rank) + "-D '" + n +
                                        "'; it is not an SD3 MMDiT checkpoint (or it is incomplete)");
    return t->shape;
  };
  MmditConfig c;
  c.num_layers = 0;
  while (w.find("joint_blocks." + std::to_string(c.num_layers) + ".x_block.attn.qkv.weight")) ++c.num_layers;
  if (c.num_layers == 0) need("joint_blocks.0.x_block.attn.qkv.weight", 2);
  const Shape& pe = need("x_embedder.proj.weight", 4);
  const int64_t hidden = pe[0];
  c.in_channels = pe[1];
  c.patch_size = pe[2];
  c.qk_norm = w.find("joint_blocks.0.x_block.attn.ln_q.weight") ? "rms_norm" : "";
  c.attention_head_dim = c.qk_norm.empty() ? 64 : need("joint_blocks.0.x_block.attn.ln_q.weight", 1)[0];
  if (hidden % c.attention_head_dim)
    fail(ErrorCode::kShapeMismatch, w.describe() + ": hidden size " + std::to_string(hidden) +
                                        " is not a multiple of the head size " + std::to_string(c.attention_head_dim));
  c.num_attention_heads = hidden / c.attention_head_dim;
  const Shape& ce = need("context_embedder.weight", 2);
  c.caption_projection_dim = ce[0];
  c.joint_attention_dim = ce[1];
  c.pooled_projection_dim = need("y_embedder.mlp.0.weight", 2)[1];
  const int64_t p2 = c.patch_size * c.patch_size;
  c.out_channels = need("final_layer.linear.weight", 2)[0] / p2;
  for (int64_t i = 0; i < c.num_layers; ++i)
    if (w.find("joint_blocks." + std::to_string(i) + ".x_block.attn2.qkv.weight")) c.dual_attention_layers.push_back(i);
  const Shape& pos = need("pos_embed", 3);
  c.pos_embed_max_size = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(pos[1]))));
  if (c.pos_embed_max_size * c.pos_embed_max_size != pos[1])
    fail(ErrorCode::kCorruptFile, w.describe() + ": pos_embed has " + std::to_string(pos[1]) + " rows, not a square grid");
  // Row 1 of the table is grid cell (0, 1): its width half holds sin(p), cos(p)
  // in columns 0 and D/4 (frequency 1), p = base / max with base = sample/patch.
  const Tensor t = w.get("pos_embed");
  const int64_t d = t.dim(2);
  const float* r1 = t.data() + d;
  double best = 0;
  for (int64_t h = 0; h < 2; ++h) {  // the half whose angle is non-zero
    const double p = std::atan2(r1[h * d / 2], r1[h * d / 2 + d / 4]);
    if (std::fabs(p) > std::fabs(best)) best = p;
  }
  const int64_t base = std::llround(best * static_cast<double>(c.pos_embed_max_size));
  c.sample_size = base > 0 ? base * c.patch_size : 128;
  validate(c, w.describe());
  return c;
}

}  // namespace vg
