#include "models/zimage_names.h"

#include <regex>

#include "core/error.h"
#include "io/derived_weights.h"

namespace vg {

namespace {

constexpr const char* kPrefix = "model.diffusion_model.";
constexpr const char* kProbe = "layers.0.attention.qkv.weight";
constexpr const char* kDiffusersProbe = "layers.0.attention.to_q.weight";

// `key`: diffusers' "<patch>-<f_patch>" of the patch embedder and final layer.
std::optional<DerivedSource> diffusers_source(const std::string& name, const std::string& key) {
  static const std::regex attn(R"(^((?:layers|noise_refiner|context_refiner)\.\d+\.attention\.)(qkv|out|q_norm|k_norm)\.(weight|bias)$)");
  std::smatch m;
  if (std::regex_match(name, m, attn)) {
    const std::string p = m[1], part = m[2], x = "." + m[3].str();
    if (part == "qkv") return DerivedSource{{p + "to_q" + x, p + "to_k" + x, p + "to_v" + x}};
    if (part == "out") return DerivedSource{{p + "to_out.0" + x}};
    return DerivedSource{{p + (part == "q_norm" ? "norm_q" : "norm_k") + x}};
  }
  for (const std::string head : {"x_embedder.", "final_layer."})
    if (name.rfind(head, 0) == 0) return DerivedSource{{"all_" + head + key + "." + name.substr(head.size())}};
  return std::nullopt;
}

}  // namespace

bool is_zimage_file(const TensorFile& f) {
  return (f.has(kProbe) && f.has("cap_embedder.1.weight")) ||
         (f.has(std::string(kPrefix) + kProbe) && f.has(std::string(kPrefix) + "cap_embedder.1.weight"));
}

bool is_zimage_diffusers(const TensorFile& f) { return f.has(kDiffusersProbe) && f.has("cap_embedder.1.weight"); }

WeightStore zimage_file_weights(std::shared_ptr<TensorFile> f) {
  WeightStore w;
  if (is_zimage_diffusers(*f)) {
    w.add_file(std::move(f));
    return zimage_weights_from_diffusers(std::move(w));
  }
  if (!is_zimage_file(*f))
    fail(ErrorCode::kCorruptFile, "'" + f->path() + "' has no '" + kProbe +
                                      "'; it is not a Z-Image transformer (z_image_turbo_bf16.safetensors layout)");
  const bool prefixed = !f->has(kProbe);
  w.add_file(std::move(f), prefixed ? kPrefix : "");
  return w;
}

WeightStore zimage_weights_from_diffusers(WeightStore d) {
  // the patch size key of the stored embedder ("2-1" in every released model; one size is run)
  std::string key = "2-1";
  const std::string head = "all_x_embedder.";
  for (const auto& [name, info] : d.entries())
    if (name.rfind(head, 0) == 0 && name.find('.', head.size()) != std::string::npos) {
      key = name.substr(head.size(), name.find('.', head.size()) - head.size());
      break;
    }
  return derive_weights(
      std::move(d), [key](const std::string& n) { return diffusers_source(n, key); }, "Z-Image transformer");
}

}  // namespace vg
