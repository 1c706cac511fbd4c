#include "models/flux_names.h"

#include <optional>
#include <regex>
#include <vector>

#include "core/error.h"
#include "models/fused_weights.h"

namespace vg {

namespace {

const char* kProbe = "double_blocks.0.img_attn.qkv.weight";

// Where a BFL tensor lives in diffusers' layout: the parts whose rows are
// concatenated (one part = a rename), and whether its two row halves swap.
using DiffusersSource = FusedSource;

std::optional<DiffusersSource> diffusers_source(const std::string& bfl) {
  static const std::regex dbl(R"(^double_blocks\.(\d+)\.(img|txt)_(.+)\.(weight|bias|scale)$)");
  static const std::regex sgl(R"(^single_blocks\.(\d+)\.(.+)\.(weight|bias|scale)$)");
  std::smatch m;
  if (std::regex_match(bfl, m, dbl)) {
    const std::string p = "transformer_blocks." + m[1].str() + ".", x = "." + m[4].str(), part = m[3];
    const bool img = m[2] == "img";
    if (part == "mod.lin") return DiffusersSource{{p + (img ? "norm1.linear" : "norm1_context.linear") + x}};
    if (part == "attn.qkv") {
      if (img) return DiffusersSource{{p + "attn.to_q" + x, p + "attn.to_k" + x, p + "attn.to_v" + x}};
      return DiffusersSource{
          {p + "attn.add_q_proj" + x, p + "attn.add_k_proj" + x, p + "attn.add_v_proj" + x}};
    }
    if (part == "attn.norm.query_norm")
      return DiffusersSource{{p + (img ? "attn.norm_q" : "attn.norm_added_q") + ".weight"}};
    if (part == "attn.norm.key_norm")
      return DiffusersSource{{p + (img ? "attn.norm_k" : "attn.norm_added_k") + ".weight"}};
    if (part == "attn.proj") return DiffusersSource{{p + (img ? "attn.to_out.0" : "attn.to_add_out") + x}};
    if (part == "mlp.0") return DiffusersSource{{p + (img ? "ff.net.0.proj" : "ff_context.net.0.proj") + x}};
    if (part == "mlp.2") return DiffusersSource{{p + (img ? "ff.net.2" : "ff_context.net.2") + x}};
    return std::nullopt;
  }
  if (std::regex_match(bfl, m, sgl)) {
    const std::string p = "single_transformer_blocks." + m[1].str() + ".", x = "." + m[3].str(), part = m[2];
    if (part == "linear1")
      return DiffusersSource{
          {p + "attn.to_q" + x, p + "attn.to_k" + x, p + "attn.to_v" + x, p + "proj_mlp" + x}};
    if (part == "linear2") return DiffusersSource{{p + "proj_out" + x}};
    if (part == "modulation.lin") return DiffusersSource{{p + "norm.linear" + x}};
    if (part == "norm.query_norm") return DiffusersSource{{p + "attn.norm_q.weight"}};
    if (part == "norm.key_norm") return DiffusersSource{{p + "attn.norm_k.weight"}};
    return std::nullopt;
  }
  static const std::pair<const char*, const char*> kRenames[] = {
      {"img_in.", "x_embedder."},
      {"txt_in.", "context_embedder."},
      {"time_in.in_layer.", "time_text_embed.timestep_embedder.linear_1."},
      {"time_in.out_layer.", "time_text_embed.timestep_embedder.linear_2."},
      {"guidance_in.in_layer.", "time_text_embed.guidance_embedder.linear_1."},
      {"guidance_in.out_layer.", "time_text_embed.guidance_embedder.linear_2."},
      {"vector_in.in_layer.", "time_text_embed.text_embedder.linear_1."},
      {"vector_in.out_layer.", "time_text_embed.text_embedder.linear_2."},
      {"final_layer.linear.", "proj_out."},
  };
  for (auto& [b, d] : kRenames)
    if (bfl.rfind(b, 0) == 0) return DiffusersSource{{d + bfl.substr(std::string(b).size())}};
  const std::string ada = "final_layer.adaLN_modulation.1.";
  if (bfl.rfind(ada, 0) == 0) return DiffusersSource{{"norm_out.linear." + bfl.substr(ada.size())}, true};
  return std::nullopt;
}

}  // namespace

bool is_flux_bfl(const TensorFile& f) { return f.has(kProbe) || f.has(std::string(kFluxBflPrefix) + kProbe); }

bool is_flux_diffusers(const TensorFile& f) {
  return f.has("transformer_blocks.0.attn.add_q_proj.weight") && f.has("x_embedder.weight");
}

WeightStore flux_bfl_weights(std::shared_ptr<TensorFile> f) {
  if (!is_flux_bfl(*f))
    fail(ErrorCode::kCorruptFile,
         "'" + f->path() + "' has no '" + kProbe + "'; it is not a FLUX.1 transformer in BFL's layout");
  const bool prefixed = !f->has(kProbe);
  WeightStore w;
  w.add_file(std::move(f), prefixed ? kFluxBflPrefix : "");
  return w;
}

WeightStore flux_weights_from_diffusers(WeightStore d) {
  return with_fused_weights(std::move(d), diffusers_source, "FLUX transformer");
}

}  // namespace vg
