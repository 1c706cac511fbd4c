// FluxConfig: from diffusers' transformer/config.json or from BFL weights.
#include <nlohmann/json.hpp>
#include <numeric>

#include "core/error.h"
#include "models/config_util.h"
#include "models/flux.h"

namespace vg {

FluxConfig FluxConfig::from_json_file(const std::string& path) {
  return from_json(read_json_file(path, "FLUX transformer"), path);
}

FluxConfig FluxConfig::from_json(const nlohmann::json& j, const std::string& path) {
  FluxConfig c;
  try {
    if (j.value("patch_size", int64_t{1}) != 1)
      fail(ErrorCode::kUnsupportedModel,
           "'" + path + "': FLUX transformers with patch_size != 1 are not supported");
    c.in_channels = j.value("in_channels", c.in_channels);
    c.num_layers = j.value("num_layers", c.num_layers);
    c.num_single_layers = j.value("num_single_layers", c.num_single_layers);
    c.attention_head_dim = j.value("attention_head_dim", c.attention_head_dim);
    c.num_attention_heads = j.value("num_attention_heads", c.num_attention_heads);
    c.joint_attention_dim = j.value("joint_attention_dim", c.joint_attention_dim);
    c.pooled_projection_dim = j.value("pooled_projection_dim", c.pooled_projection_dim);
    c.guidance_embeds = j.value("guidance_embeds", false);  // diffusers' default
    c.axes_dims_rope = j.value("axes_dims_rope", c.axes_dims_rope);
    c.out_channels = (j.contains("out_channels") && !j["out_channels"].is_null())
                         ? j["out_channels"].get<int64_t>()
                         : c.in_channels;
  } catch (const nlohmann::json::exception& e) {
    fail(ErrorCode::kCorruptFile, "'" + path + "' has a field of the wrong type: " + e.what());
  }
  c.validate(path);
  return c;
}

void FluxConfig::validate(const std::string& source) const {
  auto bad = [&](const std::string& what) {
    fail(ErrorCode::kCorruptFile, source + ": " + what + "; the FLUX transformer config is inconsistent");
  };
  if (in_channels <= 0 || out_channels <= 0 || num_layers < 0 || num_single_layers < 0 ||
      joint_attention_dim <= 0 || pooled_projection_dim <= 0)
    bad("a size is not positive");
  if (attention_head_dim <= 0 || attention_head_dim % 2 || num_attention_heads <= 0)
    bad("attention_head_dim must be even and positive, num_attention_heads positive");
  if (axes_dims_rope.empty()) bad("axes_dims_rope is empty");
  for (int64_t a : axes_dims_rope)
    if (a <= 0 || a % 2) bad("every axes_dims_rope entry must be even and positive");
  if (std::accumulate(axes_dims_rope.begin(), axes_dims_rope.end(), int64_t{0}) != attention_head_dim)
    bad("axes_dims_rope must sum to attention_head_dim (" + std::to_string(attention_head_dim) + ")");
}

namespace {
const Shape& shape_of(const WeightStore& w, const std::string& name, size_t rank) {
  return weight_shape(w, name, rank, "FLUX");
}
}  // namespace

FluxConfig FluxConfig::from_weights(const WeightStore& w, const std::vector<int64_t>& axes_hint) {
  FluxConfig c;
  const Shape& img_in = shape_of(w, "img_in.weight", 2);
  const int64_t inner = img_in[0];
  c.in_channels = img_in[1];
  c.joint_attention_dim = shape_of(w, "txt_in.weight", 2)[1];
  c.pooled_projection_dim = shape_of(w, "vector_in.in_layer.weight", 2)[1];
  c.out_channels = shape_of(w, "final_layer.linear.weight", 2)[0];
  c.guidance_embeds = w.find("guidance_in.in_layer.weight") != nullptr;
  c.num_layers = count_blocks(w, "double_blocks.", ".img_attn.qkv.weight");
  c.num_single_layers = count_blocks(w, "single_blocks.", ".linear1.weight");
  if (c.num_layers == 0)
    fail(ErrorCode::kCorruptFile,
         "FLUX weights " + w.describe() + " have no double_blocks.0; not a FLUX.1 transformer");
  const int64_t hd = shape_of(w, "double_blocks.0.img_attn.norm.query_norm.scale", 1)[0];
  if (hd <= 0 || inner % hd)
    fail(ErrorCode::kCorruptFile, "FLUX weights: width " + std::to_string(inner) +
                                      " is not a multiple of the head dim " + std::to_string(hd) +
                                      " (query_norm.scale); the file is damaged");
  c.attention_head_dim = hd;
  c.num_attention_heads = inner / hd;
  if (!axes_hint.empty()) {
    c.axes_dims_rope = axes_hint;
  } else if (hd == 128) {
    c.axes_dims_rope = {16, 56, 56};
  } else {
    c.axes_dims_rope = even_rope_axes(hd);
  }
  c.validate("FLUX weights " + w.describe());
  return c;
}

}  // namespace vg
