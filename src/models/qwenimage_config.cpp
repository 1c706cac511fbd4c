// QwenImageConfig (transformer/config.json or the weights of a single file)
// and the single-file detection.
#include <nlohmann/json.hpp>
#include <numeric>

#include "core/error.h"
#include "models/config_util.h"
#include "models/qwenimage.h"

namespace vg {

QwenImageConfig QwenImageConfig::from_json_file(const std::string& path) {
  return from_json(read_json_file(path, "Qwen-Image transformer"), path);
}

QwenImageConfig QwenImageConfig::from_json(const nlohmann::json& j, const std::string& source) {
  QwenImageConfig c;
  try {
    for (const char* flag : {"zero_cond_t", "use_additional_t_cond", "use_layer3d_rope"})
      if (j.contains(flag) && !j[flag].is_null() && j[flag].get<bool>())
        fail(ErrorCode::kUnsupportedModel, "'" + source + "' sets " + flag +
                                               " (a Qwen-Image edit/layered variant); only the text-to-image "
                                               "Qwen-Image transformer is supported");
    c.patch_size = j.value("patch_size", c.patch_size);
    c.in_channels = j.value("in_channels", c.in_channels);
    c.num_layers = j.value("num_layers", c.num_layers);
    c.attention_head_dim = j.value("attention_head_dim", c.attention_head_dim);
    c.num_attention_heads = j.value("num_attention_heads", c.num_attention_heads);
    c.joint_attention_dim = j.value("joint_attention_dim", c.joint_attention_dim);
    c.axes_dims_rope = j.value("axes_dims_rope", c.axes_dims_rope);
    if (j.contains("out_channels"))  // diffusers: default 16; null -> in_channels
      c.out_channels = j["out_channels"].is_null() ? c.in_channels : j["out_channels"].get<int64_t>();
  } catch (const nlohmann::json::exception& e) {
    fail(ErrorCode::kCorruptFile, "'" + source + "' has a field of the wrong type: " + e.what());
  }
  c.validate(source);
  return c;
}

void QwenImageConfig::validate(const std::string& source) const {
  auto bad = [&](const std::string& what) {
    fail(ErrorCode::kCorruptFile,
         source + ": " + what + "; the Qwen-Image transformer config is inconsistent");
  };
  if (patch_size <= 0 || in_channels <= 0 || out_channels <= 0 || num_layers < 0 || joint_attention_dim <= 0)
    bad("a size is not positive");
  if (attention_head_dim <= 0 || attention_head_dim % 2 || num_attention_heads <= 0)
    bad("attention_head_dim must be even and positive, num_attention_heads positive");
  if (axes_dims_rope.size() != 3) bad("axes_dims_rope must have 3 entries (frame, height, width)");
  for (int64_t a : axes_dims_rope)
    if (a <= 0 || a % 2) bad("every axes_dims_rope entry must be even and positive");
  if (std::accumulate(axes_dims_rope.begin(), axes_dims_rope.end(), int64_t{0}) != attention_head_dim)
    bad("axes_dims_rope must sum to attention_head_dim (" + std::to_string(attention_head_dim) + ")");
}

namespace {

const char* kProbe = "transformer_blocks.0.img_mod.1.weight";

const Shape& shape_of(const WeightStore& w, const std::string& name, size_t rank) {
  const TensorInfo* t = w.find(name);
  if (!t)
    fail(ErrorCode::kCorruptFile, "Qwen-Image weights " + w.describe() + " lack '" + name +
                                      "'; the file is incomplete or not a Qwen-Image transformer");
  if (t->shape.size() != rank)
    fail(ErrorCode::kCorruptFile, "Qwen-Image weight '" + name + "' has shape " + shape_str(t->shape) +
                                      ", expected " + std::to_string(rank) +
                                      " dimensions; the file is damaged");
  return t->shape;
}

}  // namespace

QwenImageConfig QwenImageConfig::from_weights(const WeightStore& w) {
  QwenImageConfig c;
  const Shape& img_in = shape_of(w, "img_in.weight", 2);
  const int64_t inner = img_in[0];
  c.in_channels = img_in[1];
  c.joint_attention_dim = shape_of(w, "txt_in.weight", 2)[1];
  const int64_t out_rows = shape_of(w, "proj_out.weight", 2)[0];
  if (out_rows % (c.patch_size * c.patch_size))
    fail(ErrorCode::kCorruptFile, "Qwen-Image weights: proj_out has " + std::to_string(out_rows) +
                                      " rows, not a multiple of patch 2 x 2; the file is damaged");
  c.out_channels = out_rows / (c.patch_size * c.patch_size);
  c.num_layers = 0;
  while (w.find("transformer_blocks." + std::to_string(c.num_layers) + ".img_mod.1.weight")) ++c.num_layers;
  if (c.num_layers == 0)
    fail(ErrorCode::kCorruptFile,
         "Qwen-Image weights " + w.describe() + " have no '" + kProbe + "'; not a Qwen-Image transformer");
  const int64_t hd = shape_of(w, "transformer_blocks.0.attn.norm_q.weight", 1)[0];
  if (hd <= 0 || inner % hd)
    fail(ErrorCode::kCorruptFile, "Qwen-Image weights: width " + std::to_string(inner) +
                                      " is not a multiple of the head dim " + std::to_string(hd) +
                                      " (norm_q); the file is damaged");
  c.attention_head_dim = hd;
  c.num_attention_heads = inner / hd;
  if (hd == 128) {
    c.axes_dims_rope = {16, 56, 56};
  } else {
    const int64_t pairs = hd / 2, base = pairs / 3, spare = pairs % 3;
    c.axes_dims_rope = {2 * base, 2 * (base + (spare > 0)), 2 * (base + (spare > 1))};
  }
  c.validate("Qwen-Image weights " + w.describe());
  return c;
}

bool is_qwenimage_file(const TensorFile& f) {
  for (const std::string p : {"", kQwenImagePrefix})
    if (f.has(p + kProbe) && f.has(p + "txt_norm.weight") && f.has(p + "img_in.weight")) return true;
  return false;
}

WeightStore qwenimage_file_weights(std::shared_ptr<TensorFile> f) {
  if (!is_qwenimage_file(*f))
    fail(ErrorCode::kCorruptFile, "'" + f->path() + "' has no '" + kProbe +
                                      "', 'txt_norm.weight' and 'img_in.weight'; it is not a Qwen-Image "
                                      "transformer");
  const bool prefixed = !f->has(kProbe);
  WeightStore w;
  w.add_file(std::move(f), prefixed ? kQwenImagePrefix : "");
  return w;
}

}  // namespace vg
