#include "models/wan_names.h"

#include <regex>

#include "core/error.h"
#include "io/derived_weights.h"

namespace vg {

namespace {

constexpr const char* kPrefix = "model.diffusion_model.";
constexpr const char* kProbe = "blocks.0.self_attn.q.weight";
constexpr const char* kDiffusersProbe = "blocks.0.attn1.to_q.weight";

bool has_original(const TensorFile& f, const std::string& prefix) {
  return f.has(prefix + kProbe) && f.has(prefix + "patch_embedding.weight");
}

}  // namespace

std::optional<std::string> wan_diffusers_name(const std::string& n) {
  static const std::pair<const char*, const char*> kTop[] = {
      {"time_embedding.0.", "condition_embedder.time_embedder.linear_1."},
      {"time_embedding.2.", "condition_embedder.time_embedder.linear_2."},
      {"time_projection.1.", "condition_embedder.time_proj."},
      {"text_embedding.0.", "condition_embedder.text_embedder.linear_1."},
      {"text_embedding.2.", "condition_embedder.text_embedder.linear_2."},
      {"head.head.", "proj_out."}};
  for (const auto& [from, to] : kTop)
    if (n.rfind(from, 0) == 0) return to + n.substr(std::char_traits<char>::length(from));
  if (n == "head.modulation") return "scale_shift_table";
  static const std::regex block(R"(^(blocks\.\d+\.)(.*)$)");
  std::smatch m;
  if (!std::regex_match(n, m, block)) return std::nullopt;
  const std::string p = m[1], rest = m[2];
  if (rest == "modulation") return p + "scale_shift_table";
  static const std::regex attn(R"(^(self_attn|cross_attn)\.(q|k|v|o|norm_q|norm_k)\.(weight|bias)$)");
  if (std::regex_match(rest, m, attn)) {
    const std::string which = m[1] == "self_attn" ? "attn1." : "attn2.", part = m[2];
    const std::string to = part == "o" ? "to_out.0" : part.size() == 1 ? "to_" + part : part;
    return p + which + to + "." + m[3].str();
  }
  static const std::pair<const char*, const char*> kInner[] = {
      {"norm3.", "norm2."}, {"ffn.0.", "ffn.net.0.proj."}, {"ffn.2.", "ffn.net.2."}};
  for (const auto& [from, to] : kInner)
    if (rest.rfind(from, 0) == 0) return p + to + rest.substr(std::char_traits<char>::length(from));
  return std::nullopt;
}

bool is_wan_transformer_diffusers(const TensorFile& f) {
  return f.has(kDiffusersProbe) && f.has("condition_embedder.time_proj.weight");
}

bool is_wan_transformer_file(const TensorFile& f) {
  return has_original(f, "") || has_original(f, kPrefix) || is_wan_transformer_diffusers(f);
}

WeightStore wan_file_weights(std::shared_ptr<TensorFile> f) {
  WeightStore w;
  if (is_wan_transformer_diffusers(*f)) {
    w.add_file(std::move(f));
    return wan_weights_from_diffusers(std::move(w));
  }
  if (!is_wan_transformer_file(*f))
    fail(ErrorCode::kCorruptFile,
         "'" + f->path() + "' has no '" + kProbe +
             "'; it is not a Wan transformer (wan2.2_ti2v_5B_fp16.safetensors layout)");
  const bool prefixed = !has_original(*f, "");
  w.add_file(std::move(f), prefixed ? kPrefix : "");
  return w;
}

WeightStore wan_weights_from_diffusers(WeightStore d) {
  return derive_weights(
      std::move(d),
      [](const std::string& n) -> std::optional<DerivedSource> {
        auto to = wan_diffusers_name(n);
        if (!to) return std::nullopt;
        return DerivedSource{{*to}};
      },
      "Wan transformer");
}

}  // namespace vg
