// diffusers SDXL folder -> one SGM-layout .safetensors, as diffusers'
// scripts/convert_diffusers_to_original_sdxl.py writes it: OpenCLIP q/k/v
// fused into in_proj, text_projection transposed, VAE attention as 1x1 convs,
// add_embedding as label_emb. Everything else is copied as stored.
#include <cstring>
#include <list>
#include <regex>
#include <set>

#include "core/error.h"
#include "io/atomic_file.h"
#include "io/weights.h"
#include "models/config_util.h"
#include "pipelines/ldm_checkpoint.h"
#include "pipelines/ldm_names.h"
#include "pipelines/sd_model.h"

namespace vg {

namespace {

// OpenCLIP name of a transformers CLIPTextModelWithProjection tensor ("" = fused q/k/v, handled apart).
std::string openclip_name(const std::string& n, const std::string& P) {
  static const std::regex layer(R"(^text_model\.encoder\.layers\.(\d+)\.(.*)$)");
  std::smatch m;
  if (n == "text_model.embeddings.token_embedding.weight") return P + "token_embedding.weight";
  if (n == "text_model.embeddings.position_embedding.weight") return P + "positional_embedding";
  if (n.rfind("text_model.final_layer_norm.", 0) == 0) return P + "ln_final." + n.substr(28);
  if (n == "text_projection.weight") return P + "text_projection";
  if (!std::regex_match(n, m, layer)) return P + n;
  const std::string r = P + "transformer.resblocks." + m[1].str() + ".", part = m[2];
  static const std::pair<const char*, const char*> kMap[] = {{"layer_norm1.", "ln_1."},
                                                             {"layer_norm2.", "ln_2."},
                                                             {"mlp.fc1.", "mlp.c_fc."},
                                                             {"mlp.fc2.", "mlp.c_proj."},
                                                             {"self_attn.out_proj.", "attn.out_proj."}};
  for (auto& [a, b] : kMap)
    if (part.rfind(a, 0) == 0) return r + b + part.substr(std::strlen(a));
  if (part.rfind("self_attn.", 0) == 0 && part.find("_proj.") == 11) return "";
  return r + part;
}

}  // namespace

void convert_sdxl_to_sgm(const std::string& dir, const std::string& out_path) {
  const auto index = read_json_file(dir + "/model_index.json", "pipeline");
  const nlohmann::json ucj = read_json_file(dir + "/unet/config.json", "UNet");
  const UNetConfig uc = UNetConfig::from_json(ucj, dir + "/unet/config.json");
  const VaeConfig vc = VaeConfig::from_json_file(dir + "/vae/config.json");
  std::set<int64_t> lpb(uc.layers_per_block.begin(), uc.layers_per_block.end());
  if (lpb.size() != 1)
    fail(ErrorCode::kUnsupportedModel, "SGM layout needs the same layers_per_block everywhere");
  std::vector<bool> up_attn;
  for (auto& t : uc.up_block_types) up_attn.push_back(t == "CrossAttnUpBlock2D");
  const int L = static_cast<int>(*lpb.begin());
  const int vlevels = static_cast<int>(vc.block_out_channels.size());
  const bool has_te1 = path_exists(dir + "/text_encoder/config.json");  // the refiner has none
  std::vector<TensorToWrite> out;
  std::vector<WeightStore> keep;
  keep.reserve(4);                        // entries() references stay valid
  std::list<std::vector<uint8_t>> owned;  // fused / transposed tensors
  std::map<std::string, std::string> meta{{"format", "pt"}, {"converted_by", "visiongen"}};
  auto open = [&](const char* comp) -> const std::map<std::string, const TensorInfo*>& {
    keep.push_back(open_component_weights(dir + "/" + comp, comp));
    meta[std::string("visiongen.") + comp + "_config"] =
        read_json_file(dir + "/" + comp + "/config.json", comp).dump();
    return keep.back().entries();
  };
  for (auto& [name, info] : open("unet")) {
    std::string l;
    if (name.rfind("add_embedding.linear_1.", 0) == 0)
      l = "model.diffusion_model.label_emb.0.0." + name.substr(23);
    else if (name.rfind("add_embedding.linear_2.", 0) == 0)
      l = "model.diffusion_model.label_emb.0.2." + name.substr(23);
    else
      l = unet_to_ldm(name, L, up_attn);
    out.push_back(TensorToWrite{l, info->dtype, info->shape, info->data});
  }
  for (auto& [name, info] : open("vae")) {
    Shape s = info->shape;
    const std::string l = vae_to_ldm(name, vlevels);
    if (l.find(".attn_1.") != std::string::npos && s.size() == 2) s = {s[0], s[1], 1, 1};  // 1x1 convs
    out.push_back(TensorToWrite{l, info->dtype, s, info->data});
  }
  if (has_te1)
    for (auto& [name, info] : open("text_encoder"))
      out.push_back(
          TensorToWrite{"conditioner.embedders.0.transformer." + name, info->dtype, info->shape, info->data});
  const std::string P = has_te1 ? "conditioner.embedders.1.model." : "conditioner.embedders.0.model.";
  const auto& te2 = open("text_encoder_2");
  for (auto& [name, info] : te2) {
    const std::string l = openclip_name(name, P);
    if (l.empty()) continue;
    if (name == "text_projection.weight") {  // [P,C] -> [C,P]: OpenCLIP computes x @ text_projection
      if (info->shape.size() != 2)
        fail(ErrorCode::kCorruptFile, "text_encoder_2's text_projection is not 2-D");
      const int64_t rows = info->shape[0], cols = info->shape[1];
      const size_t es = dtype_size(info->dtype);
      auto& buf = owned.emplace_back(info->nbytes);
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c)
          std::memcpy(buf.data() + (c * rows + r) * es, info->data + (r * cols + c) * es, es);
      out.push_back(TensorToWrite{l, info->dtype, {cols, rows}, buf.data()});
      continue;
    }
    out.push_back(TensorToWrite{l, info->dtype, info->shape, info->data});
  }
  // in_proj_weight [3C,C] / in_proj_bias [3C] = cat(q, k, v).
  static const std::regex q_re(R"(^text_model\.encoder\.layers\.(\d+)\.self_attn\.q_proj\.(weight|bias)$)");
  for (auto& [name, info] : te2) {
    std::smatch m;
    if (!std::regex_match(name, m, q_re)) continue;
    const std::string base = "text_model.encoder.layers." + m[1].str() + ".self_attn.";
    std::vector<const TensorInfo*> parts;
    for (const char* x : {"q", "k", "v"}) {
      auto it = te2.find(base + x + "_proj." + m[2].str());
      if (it == te2.end() || it->second->dtype != info->dtype || it->second->shape != info->shape)
        fail(ErrorCode::kCorruptFile,
             "text_encoder_2 layer " + m[1].str() + " lacks a matching " + x + "_proj");
      parts.push_back(it->second);
    }
    auto& buf = owned.emplace_back();
    for (auto* p : parts) buf.insert(buf.end(), p->data, p->data + p->nbytes);
    Shape s = info->shape;
    s[0] *= 3;
    const bool bias = m[2] == "bias";
    out.push_back(TensorToWrite{
        P + "transformer.resblocks." + m[1].str() + ".attn." + (bias ? "in_proj_bias" : "in_proj_weight"),
        info->dtype, s, buf.data()});
  }
  // What the weights cannot tell (head counts, norm groups, sample size, scheduler): the folder's configs.
  if (path_exists(dir + "/scheduler/scheduler_config.json"))
    meta["visiongen.scheduler_config"] =
        read_json_file(dir + "/scheduler/scheduler_config.json", "scheduler").dump();
  meta["visiongen.model_index"] = index.dump();
  write_safetensors(out_path, out, meta);
}

}  // namespace vg
