// ZImageConfig: from diffusers' transformer/config.json or from the original weights.
#include <nlohmann/json.hpp>
#include <numeric>

#include "core/error.h"
#include "models/config_util.h"
#include "models/zimage.h"

namespace vg {

ZImageConfig ZImageConfig::from_json_file(const std::string& path) {
  return from_json(read_json_file(path, "Z-Image transformer"), path);
}

ZImageConfig ZImageConfig::from_json(const nlohmann::json& j, const std::string& path) {
  ZImageConfig c;
  try {
    auto single = [&](const char* key, int64_t fallback) {
      if (!j.contains(key) || j[key].is_null()) return fallback;
      const auto& v = j[key];
      if (v.is_array()) {
        if (v.size() != 1)
          fail(ErrorCode::kUnsupportedModel, "'" + path + "': " + key +
                                                 " lists several patch sizes; visiongen runs Z-Image models with one");
        return v[0].get<int64_t>();
      }
      return v.get<int64_t>();
    };
    c.patch_size = single("all_patch_size", c.patch_size);
    c.f_patch_size = single("all_f_patch_size", c.f_patch_size);
    c.in_channels = j.value("in_channels", c.in_channels);
    c.dim = j.value("dim", c.dim);
    c.n_layers = j.value("n_layers", c.n_layers);
    c.n_refiner_layers = j.value("n_refiner_layers", c.n_refiner_layers);
    c.n_heads = j.value("n_heads", c.n_heads);
    c.cap_feat_dim = j.value("cap_feat_dim", c.cap_feat_dim);
    c.norm_eps = j.value("norm_eps", c.norm_eps);
    c.qk_norm = j.value("qk_norm", c.qk_norm);
    c.rope_theta = j.value("rope_theta", c.rope_theta);
    c.t_scale = j.value("t_scale", c.t_scale);
    c.axes_dims = j.value("axes_dims", c.axes_dims);
    if (j.contains("siglip_feat_dim") && !j["siglip_feat_dim"].is_null())
      fail(ErrorCode::kUnsupportedModel, "'" + path + "' is a Z-Image model with image conditioning (siglip_feat_dim: "
                                         "Z-Image-Omni/Edit); visiongen runs the text-to-image Z-Image models");
  } catch (const nlohmann::json::exception& e) {
    fail(ErrorCode::kCorruptFile, "'" + path + "' has a field of the wrong type: " + e.what());
  }
  c.validate(path);
  return c;
}

void ZImageConfig::validate(const std::string& source) const {
  auto bad = [&](const std::string& what) {
    fail(ErrorCode::kCorruptFile, source + ": " + what + "; the Z-Image transformer config is inconsistent");
  };
  if (dim <= 0 || n_heads <= 0 || n_layers < 0 || n_refiner_layers < 0 || cap_feat_dim <= 0 || in_channels <= 0 ||
      patch_size <= 0 || f_patch_size != 1 || !(norm_eps > 0) || !(rope_theta > 0) || !(t_scale > 0))
    bad("a size is not positive (or f_patch_size is not 1)");
  if (dim % n_heads || head_dim() % 2) bad("dim must split into n_heads even heads");
  if (axes_dims.size() != 3) bad("axes_dims must have three entries");
  for (int64_t a : axes_dims)
    if (a <= 0 || a % 2) bad("every axes_dims entry must be even and positive");
  if (std::accumulate(axes_dims.begin(), axes_dims.end(), int64_t{0}) != head_dim())
    bad("axes_dims must sum to the head dim (" + std::to_string(head_dim()) + ")");
}

ZImageConfig ZImageConfig::from_weights(const WeightStore& w, const std::vector<int64_t>& axes_hint) {
  ZImageConfig c;
  const Shape& xe = weight_shape(w, "x_embedder.weight", 2, "Z-Image");
  c.dim = xe[0];
  c.patch_size = 2;
  c.in_channels = xe[1] / 4;
  c.cap_feat_dim = weight_shape(w, "cap_embedder.1.weight", 2, "Z-Image")[1];
  c.n_layers = count_blocks(w, "layers.", ".attention.qkv.weight");
  c.n_refiner_layers = count_blocks(w, "noise_refiner.", ".attention.qkv.weight");
  if (c.n_layers == 0)
    fail(ErrorCode::kCorruptFile, "Z-Image weights " + w.describe() + " have no layers.0; not a Z-Image transformer");
  const TensorInfo* qn = w.find("layers.0.attention.q_norm.weight");
  c.qk_norm = qn != nullptr;
  const int64_t hd = qn && qn->shape.size() == 1 ? qn->shape[0] : 128;
  if (hd <= 0 || c.dim % hd)
    fail(ErrorCode::kCorruptFile, "Z-Image weights: width " + std::to_string(c.dim) +
                                      " is not a multiple of the head dim " + std::to_string(hd) + "; the file is damaged");
  c.n_heads = c.dim / hd;
  c.axes_dims = !axes_hint.empty() ? axes_hint : hd == 128 ? std::vector<int64_t>{32, 48, 48} : even_rope_axes(hd);
  c.validate("Z-Image weights " + w.describe());
  return c;
}

}  // namespace vg
