#include "pipelines/dit_components.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <map>
#include <regex>

#include "core/error.h"
#include "io/atomic_file.h"
#include "io/tensor_file.h"
#include "models/config_util.h"
#include "models/flux_names.h"
#include "models/mmdit_names.h"
#include "models/qwenimage.h"
#include "models/wan_names.h"
#include "models/zimage_names.h"
#include "pipelines/ldm_common.h"
#include "pipelines/ldm_names.h"

namespace vg {

namespace fs = std::filesystem;

namespace {

std::string config_of(const ComponentRef& c) {
  return first_config({is_folder(c.path) ? c.path : std::string(), c.config_dir});
}

const TensorInfo* need_info(const WeightStore& w, const std::string& name, const char* what) {
  const TensorInfo* t = w.find(name);
  if (!t)
    fail(ErrorCode::kMissingComponent, std::string(what) + " lacks '" + name + "' (" + w.describe() +
                                           "); pass the right file for this component");
  return t;
}

// transformers' T5 names -> llama.cpp's (city96's t5-v1_1-xxl-encoder GGUF files).
std::string t5_to_llama(const std::string& n) {
  static const std::regex block(R"(^encoder\.block\.(\d+)\.layer\.([01])\.(.+)$)");
  static const std::map<std::string, std::string> parts = {
      {"0.SelfAttention.q.weight", "attn_q"},      {"0.SelfAttention.k.weight", "attn_k"},
      {"0.SelfAttention.v.weight", "attn_v"},      {"0.SelfAttention.o.weight", "attn_o"},
      {"0.SelfAttention.relative_attention_bias.weight", "attn_rel_b"},
      {"0.layer_norm.weight", "attn_norm"},        {"1.DenseReluDense.wi_0.weight", "ffn_gate"},
      {"1.DenseReluDense.wi_1.weight", "ffn_up"},  {"1.DenseReluDense.wi.weight", "ffn_up"},
      {"1.DenseReluDense.wo.weight", "ffn_down"},  {"1.layer_norm.weight", "ffn_norm"}};
  if (n == "shared.weight" || n == "encoder.embed_tokens.weight") return "token_embd.weight";
  if (n == "encoder.final_layer_norm.weight") return "enc.output_norm.weight";
  std::smatch m;
  if (!std::regex_match(n, m, block)) return n;
  auto it = parts.find(m[2].str() + "." + m[3].str());
  return it == parts.end() ? n : "enc.blk." + m[1].str() + "." + it->second + ".weight";
}

}  // namespace

void refuse_unknown_tensors(const WeightStore& w, const std::string& file, const std::string& family,
                            std::initializer_list<const char*> ignored) {
  std::vector<std::string> unknown;
  for (const std::string& n : w.unused_names())
    if (std::none_of(ignored.begin(), ignored.end(), [&](const char* i) { return n == i; })) unknown.push_back(n);
  if (unknown.empty()) return;
  fail(ErrorCode::kUnsupportedModel, "'" + file + "' holds " + std::to_string(unknown.size()) + " tensor(s) a " + family +
                                         " transformer does not have (first: '" + unknown.front() +
                                         "'); it is another model or variant, or a damaged conversion; pass the " +
                                         family + " transformer file itself");
}

bool is_folder(const std::string& p) {
  std::error_code ec;
  return fs::is_directory(p, ec);
}

const std::string& first_given(const std::string& a, const std::string& b) { return a.empty() ? b : a; }

std::string dit_family_of(const std::string& path) {
  if (path.empty()) return "";
  if (is_folder(path)) {
    const std::string c = pipeline_class(path);
    if (c.rfind("Flux", 0) == 0) return "flux";
    if (c.rfind("StableDiffusion3", 0) == 0) return "sd3";
    if (c.rfind("ZImage", 0) == 0) return "zimage";
    if (c.rfind("QwenImage", 0) == 0) return "qwenimage";
    if (c.rfind("Wan", 0) == 0) return "wan";
    return "";
  }
  try {
    auto f = open_tensor_file(path);
    if (is_flux_bfl(*f)) return "flux";
    if (is_mmdit_file(*f)) return "sd3";
    if (is_zimage_file(*f) || is_zimage_diffusers(*f)) return "zimage";
    if (is_qwenimage_file(*f)) return "qwenimage";
    if (is_wan_transformer_file(*f)) return "wan";
    return "";
  } catch (const std::exception&) {
    return "";  // unreadable: the loader reports it properly
  }
}

std::string first_config(std::initializer_list<std::string> dirs) {
  for (const std::string& d : dirs)
    if (!d.empty() && path_exists(d + "/config.json")) return d + "/config.json";
  return "";
}

std::string pipeline_class(const std::string& dir) {
  if (!path_exists(dir + "/model_index.json")) return "";
  return read_json_file(dir + "/model_index.json", "model index").value("_class_name", "");
}

VaeConfig dit_vae_defaults(float scaling_factor, float shift_factor) {
  VaeConfig v;
  v.latent_channels = 16;
  v.norm_num_groups = 32;
  v.scaling_factor = scaling_factor;
  v.shift_factor = shift_factor;
  return v;
}

WeightStore open_component(const ComponentRef& c, const char* what) {
  if (is_folder(c.path)) return open_component_weights(c.path, what);
  if (!path_exists(c.path))
    fail(ErrorCode::kFileNotFound, std::string(what) + " file '" + c.path + "' does not exist; check the path");
  auto file = open_tensor_file(c.path);
  if (file->has("enc.blk.0.attn_q.weight")) return renamed_store(file, t5_to_llama);  // llama.cpp T5 GGUF
  WeightStore w;
  w.add_file(file, c.prefix);
  return w;
}

std::unique_ptr<ClipTextModel> load_clip_component(const ComponentRef& c, bool bf16, const char* what) {
  WeightStore w = open_component(c, what);
  w.set_compute_bf16(bf16);
  ClipTextConfig cfg;
  const std::string json = config_of(c);
  if (!json.empty()) {
    cfg = ClipTextConfig::from_json_file(json);
  } else {  // a single file: CLIP-L (quick_gelu) or OpenCLIP bigG (gelu), 64-wide heads
    const std::string P = "text_model.";
    const TensorInfo* tok = need_info(w, P + "embeddings.token_embedding.weight", what);
    cfg.vocab_size = tok->shape[0];
    cfg.hidden_size = tok->shape[1];
    cfg.num_layers = count_blocks(w, P + "encoder.layers.", ".mlp.fc1.weight");
    cfg.intermediate_size = need_info(w, P + "encoder.layers.0.mlp.fc1.weight", what)->shape[0];
    cfg.num_heads = std::max<int64_t>(1, cfg.hidden_size / 64);
    cfg.max_positions = need_info(w, P + "embeddings.position_embedding.weight", what)->shape[0];
    cfg.act = cfg.hidden_size >= 1024 ? Act::kGelu : Act::kQuickGelu;
    if (const TensorInfo* proj = w.find("text_projection.weight")) cfg.projection_dim = proj->shape[0];
  }
  // SD3 single files keep CLIP-L without its projection: diffusers uses the identity
  if (cfg.projection_dim > 0 && !w.find("text_projection.weight")) cfg.projection_dim = 0;
  return std::make_unique<ClipTextModel>(cfg, w, "", /*lazy=*/true);
}

std::unique_ptr<T5Encoder> load_t5_component(const ComponentRef& c, bool bf16, const char* what) {
  WeightStore w = open_component(c, what);
  w.set_compute_bf16(bf16);
  T5Config cfg;
  const std::string json = config_of(c);
  if (!json.empty()) {
    cfg = T5Config::from_json_file(json);
  } else {  // a single file (t5xxl_fp16.safetensors): the widths from the shapes
    const std::string B = "encoder.block.";
    const TensorInfo* emb = w.find("shared.weight");
    if (!emb) emb = need_info(w, "encoder.embed_tokens.weight", what);
    cfg.vocab_size = emb->shape[0];
    cfg.d_model = emb->shape[1];
    cfg.num_layers = count_blocks(w, B, ".layer.0.SelfAttention.q.weight");
    const TensorInfo* bias = need_info(w, B + "0.layer.0.SelfAttention.relative_attention_bias.weight", what);
    cfg.relative_attention_num_buckets = bias->shape[0];
    cfg.num_heads = bias->shape[1];
    cfg.d_kv = need_info(w, B + "0.layer.0.SelfAttention.q.weight", what)->shape[0] / cfg.num_heads;
    const bool gated = w.find(B + "0.layer.1.DenseReluDense.wi_0.weight") != nullptr;
    cfg.gated = gated;
    cfg.act = gated ? T5Config::Act::kGeluTanh : T5Config::Act::kRelu;
    cfg.d_ff = need_info(w, B + "0.layer.1.DenseReluDense." + std::string(gated ? "wi_0" : "wi") + ".weight", what)->shape[0];
    cfg.per_layer_bias = w.find(B + "1.layer.0.SelfAttention.relative_attention_bias.weight") != nullptr;
  }
  return std::make_unique<T5Encoder>(cfg, w, "", /*lazy=*/true);
}

std::unique_ptr<AutoencoderKL> load_vae_component(const ComponentRef& c, bool bf16, const VaeConfig& defaults) {
  const std::string json = config_of(c);
  if (is_folder(c.path)) {
    WeightStore w = open_component_weights(c.path, "vae");
    w.set_compute_bf16(bf16);
    return std::make_unique<AutoencoderKL>(VaeConfig::from_json_file(c.path + "/config.json"), w);
  }
  if (!path_exists(c.path)) fail(ErrorCode::kFileNotFound, "VAE file '" + c.path + "' does not exist; check the path");
  auto file = open_tensor_file(c.path);
  const std::string& P = c.prefix;
  if (file->has(P + "decoder.up_blocks.0.resnets.0.conv1.weight")) {  // diffusers names in one file
    WeightStore w;
    w.add_file(file, P);
    w.set_compute_bf16(bf16);
    if (json.empty())
      fail(ErrorCode::kMissingComponent, "the VAE file '" + c.path + "' has diffusers names but no config; pass --config "
                                         "with a diffusers folder of this model");
    return std::make_unique<AutoencoderKL>(VaeConfig::from_json_file(json), w);
  }
  // LDM / BFL names (ae.safetensors, first_stage_model.* of a single file)
  VaeConfig vc = infer_ldm_vae_config(*file, P);
  if (!json.empty()) {
    const VaeConfig from = VaeConfig::from_json_file(json);
    vc.norm_num_groups = from.norm_num_groups;
    vc.scaling_factor = from.scaling_factor;
    vc.shift_factor = from.shift_factor;
  } else {
    vc.norm_num_groups = defaults.norm_num_groups;
    vc.scaling_factor = defaults.scaling_factor;
    vc.shift_factor = defaults.shift_factor;
  }
  const int levels = static_cast<int>(vc.block_out_channels.size());
  const std::string ldm = "first_stage_model.";
  WeightStore w = renamed_store(file, [levels, P, ldm](const std::string& n) {
    std::string l = vae_to_ldm(n, levels);
    if (l.rfind(ldm, 0) == 0) l = l.substr(ldm.size());
    return P + l;
  });
  w.set_compute_bf16(bf16);
  return std::make_unique<AutoencoderKL>(vc, w);
}

std::unique_ptr<WanVae> load_wan_vae_component(const ComponentRef& c, bool bf16) {
  WeightStore w = open_component(c, "vae");
  if (is_wan_vae_original(w)) w = wan_vae_weights_from_original(w);
  w.set_compute_bf16(bf16);
  const std::string json = config_of(c);
  const WanVaeConfig cfg = json.empty() ? WanVaeConfig::from_weights(w) : WanVaeConfig::from_json_file(json);
  return std::make_unique<WanVae>(cfg, w);
}

std::string find_component(const std::string& given, const std::string& config_dir, const char* sub,
                           const std::string& model_path, std::initializer_list<const char*> patterns) {
  if (!given.empty()) {
    if (!path_exists(given))
      fail(ErrorCode::kFileNotFound, "component '" + given + "' does not exist; check the path");
    return given;
  }
  if (is_folder(model_path)) return is_folder(model_path + "/" + sub) ? model_path + "/" + sub : "";
  std::error_code ec;
  std::vector<std::string> found;
  if (!model_path.empty() && patterns.size())
    for (const auto& e : fs::directory_iterator(fs::path(model_path).parent_path(), ec)) {
      std::string name = e.path().filename().string();
      std::transform(name.begin(), name.end(), name.begin(), [](unsigned char ch) { return std::tolower(ch); });
      const std::string ext = e.path().extension().string();
      if ((ext != ".safetensors" && ext != ".gguf") || fs::equivalent(e.path(), model_path, ec)) continue;
      for (const char* pat : patterns)
        if (name.rfind(pat, 0) == 0) found.push_back(e.path().string());
    }
  std::sort(found.begin(), found.end());
  if (!found.empty()) return found.front();
  if (!config_dir.empty() && is_folder(config_dir + "/" + sub)) return config_dir + "/" + sub;
  return "";
}

std::unique_ptr<ClipTokenizer> load_clip_tokenizer(const std::string& dir, const std::string& pad_token) {
  if (!dir.empty() && path_exists(dir + "/vocab.json") && path_exists(dir + "/merges.txt"))
    return std::make_unique<ClipTokenizer>(ClipTokenizer::load(dir));
  return std::make_unique<ClipTokenizer>(ClipTokenizer::builtin(pad_token));
}

std::unique_ptr<T5Tokenizer> load_t5_tokenizer(std::initializer_list<std::string> candidates, const std::string& family) {
  for (const std::string& d : candidates)
    if (!d.empty() && (path_exists(d + "/spiece.model") || path_exists(d + "/tokenizer.json")))
      return std::make_unique<T5Tokenizer>(T5Tokenizer::from_dir(d));
  fail(ErrorCode::kMissingComponent, "no T5 tokenizer (spiece.model or tokenizer.json) was found for this " + family +
                                         " model; pass --tokenizer with a folder holding one (e.g. the tokenizer_2 "
                                         "folder of black-forest-labs/FLUX.1-dev) or --config with a diffusers folder");
}

}  // namespace vg
