#include "pipelines/ldm_checkpoint.h"


#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <mutex>
#include <regex>
#include <set>

#include "core/error.h"
#include "io/atomic_file.h"
#include "lora/layer_registry.h"
#include "models/config_util.h"
#include "pipelines/a1111_yaml.h"
#include "pipelines/ldm_common.h"
#include "pipelines/ldm_names.h"
#include "pipelines/sd_model.h"

namespace vg {

namespace fs = std::filesystem;

namespace {

const char* kUnet = "model.diffusion_model.";

}  // namespace

int count_indices(const TensorFile& f, const std::string& prefix) {
  int mx = -1;
  for (auto& [name, info] : f.tensors()) {
    if (name.rfind(prefix, 0) != 0) continue;
    size_t end = name.find('.', prefix.size());
    mx = std::max(mx, std::atoi(name.substr(prefix.size(), end - prefix.size()).c_str()));
  }
  return mx + 1;
}

// The checkpoint's tensors under the diffusers names our models ask for.
WeightStore renamed_store(const std::shared_ptr<TensorFile>& file,
                          std::function<std::string(const std::string&)> to_ldm) {
  WeightStore w;
  w.add_file(file);  // keeps the file open and names it in error messages
  w.set_resolver([f = file.get(), to_ldm = std::move(to_ldm)](const std::string& name) -> const TensorInfo* {
    const std::string l = to_ldm(name);
    return f->has(l) ? &f->info(l) : nullptr;
  });
  return w;
}

VaeConfig infer_ldm_vae_config(const TensorFile& f, const std::string& p) {
  VaeConfig vc;
  const int vlevels = count_indices(f, p + "encoder.down.");
  if (vlevels <= 0) fail(ErrorCode::kCorruptFile, "'" + f.path() + "' has no VAE (" + p + "encoder.*)");
  vc.block_out_channels.clear();
  for (int i = 0; i < vlevels; ++i)
    vc.block_out_channels.push_back(need(f, p + "encoder.down." + std::to_string(i) + ".block.0.conv1.weight").shape[0]);
  vc.layers_per_block = count_indices(f, p + "encoder.down.0.block.");
  vc.latent_channels = need(f, p + "decoder.conv_in.weight").shape[1];
  vc.use_quant_conv = f.has(p + "quant_conv.weight");
  vc.use_post_quant_conv = f.has(p + "post_quant_conv.weight");
  return vc;
}

const TensorInfo& need(const TensorFile& f, const std::string& name) {
  if (!f.has(name))
    fail(ErrorCode::kCorruptFile, "'" + f.path() + "' lacks '" + name + "'; the checkpoint is incomplete");
  return f.info(name);
}

namespace {

[[noreturn]] void unknown_family(const TensorFile& f) {
  auto has_prefix = [&](const std::string& p) {
    for (auto& [n, i] : f.tensors())
      if (n.rfind(p, 0) == 0) return true;
    return false;
  };
  std::string family = "an unrecognised model";
  if (has_prefix("conditioner.embedders.")) family = "Stable Diffusion XL";
  else if (has_prefix("double_blocks.") || has_prefix("model.diffusion_model.double_blocks.")) family = "FLUX";
  else if (has_prefix("model.diffusion_model.joint_blocks.")) family = "Stable Diffusion 3";
  else if (has_prefix("lora_") || has_prefix("lora_unet_")) family = "a LoRA (not a full model)";
  else if (has_prefix("first_stage_model.") && !has_prefix(kUnet)) family = "a VAE only";
  else if (has_prefix("encoder.") && has_prefix("decoder.")) family = "a VAE only";
  const bool dit = family == "FLUX" || family == "Stable Diffusion 3";
  fail(ErrorCode::kUnsupportedModel,
       "'" + f.path() + "' contains " + family +
           (dit ? ", which 'visiongen generate' and 'serve' run but this command does not handle yet (it takes Stable "
                  "Diffusion 1.x/2.x/XL checkpoints)"
                : ", which visiongen does not support yet; supported single files are Stable Diffusion 1.x, 2.x and XL "
                  "checkpoints and FLUX.1 / SD3 transformers"));
}

}  // namespace

std::string find_tokenizer(const std::string& ckpt, const std::string& given, bool sd2) {
  auto ok = [](const std::string& d) { return path_exists(d + "/vocab.json") && path_exists(d + "/merges.txt"); };
  if (!given.empty()) {
    if (!ok(given))
      fail(ErrorCode::kMissingComponent, "tokenizer folder '" + given + "' lacks vocab.json or merges.txt");
    return given;
  }
  std::vector<std::string> cands = {(fs::path(ckpt).parent_path() / "tokenizer").string()};
  if (const char* e = std::getenv("VG_TOKENIZER_DIR")) cands.push_back(e);
  std::string hub;
  if (const char* e = std::getenv("HF_HUB_CACHE")) hub = e;
  else if (const char* e = std::getenv("HF_HOME")) hub = std::string(e) + "/hub";
  else if (const char* e = std::getenv("HOME")) hub = std::string(e) + "/.cache/huggingface/hub";
  const std::vector<std::string> repos =
      sd2 ? std::vector<std::string>{"models--stabilityai--stable-diffusion-2-1", "models--stabilityai--stable-diffusion-2"}
          : std::vector<std::string>{"models--openai--clip-vit-large-patch14", "models--runwayml--stable-diffusion-v1-5"};
  for (auto& r : repos) {
    std::error_code ec;
    for (auto& snap : fs::directory_iterator(hub + "/" + r + "/snapshots", ec)) {
      cands.push_back(snap.path().string());
      cands.push_back(snap.path().string() + "/tokenizer");
    }
  }
  for (auto& c : cands)
    if (ok(c)) return c;
  return "";  // none found: the caller uses the built-in CLIP vocabulary
}


// OpenCLIP text towers (SD2's ViT-H, SDXL's bigG) under transformers' CLIP
// names: fused in_proj split into q/k/v views, renamed norms and MLPs.
WeightStore openclip_store(const std::shared_ptr<TensorFile>& file, const std::string& P, int64_t c) {
  WeightStore tw;
  auto owned = std::make_shared<SliceViews>();
  tw.add_file(file);
  tw.set_resolver([fp = file.get(), owned, P, c](const std::string& name) -> const TensorInfo* {
    const TensorFile& f = *fp;
      static const std::regex layer(R"(^text_model\.encoder\.layers\.(\d+)\.(.*)$)");
      std::smatch mm;
      std::string l;
      if (name == "text_model.embeddings.token_embedding.weight") l = P + "token_embedding.weight";
      else if (name == "text_model.embeddings.position_embedding.weight") l = P + "positional_embedding";
      else if (name.rfind("text_model.final_layer_norm.", 0) == 0) l = P + "ln_final." + name.substr(28);
      else if (name == "text_projection.weight") l = P + "text_projection";  // [C,P]: x @ P
      else if (std::regex_match(name, mm, layer)) {
        const std::string r = P + "transformer.resblocks." + mm[1].str() + ".";
        const std::string part = mm[2];
        static const std::pair<const char*, const char*> kMap[] = {
            {"layer_norm1.", "ln_1."}, {"layer_norm2.", "ln_2."}, {"mlp.fc1.", "mlp.c_fc."},
            {"mlp.fc2.", "mlp.c_proj."}, {"self_attn.out_proj.", "attn.out_proj."}};
        for (auto& [a, b] : kMap)
          if (part.rfind(a, 0) == 0) l = r + b + part.substr(std::strlen(a));
        for (int qi = 0; qi < 3 && l.empty(); ++qi) {
          const std::string qn = std::string("self_attn.") + "qkv"[qi] + "_proj.";
          if (part.rfind(qn, 0) != 0) continue;
          const bool bias = part.substr(qn.size()) == "bias";
          const std::string src = r + (bias ? "attn.in_proj_bias" : "attn.in_proj_weight");
          if (!f.has(src)) return nullptr;
          // This third of the fused [3C, C] / [3C] tensor, as stored.
          const TensorInfo& fused = f.info(src);
          const int64_t per = bias ? c : c * c;
          if (shape_numel(fused.shape) != 3 * per) return nullptr;
          return owned->add(name, fused, qi * per, bias ? Shape{c} : Shape{c, c});
        }
      }
      return (!l.empty() && f.has(l)) ? &f.info(l) : nullptr;
    });
  return tw;
}

namespace {
WeightStore with_bf16(WeightStore w, bool bf16) {
  w.set_compute_bf16(bf16);
  return w;
}
}  // namespace

std::unique_ptr<SdModel> load_ldm_checkpoint(const std::string& path, const std::string& tokenizer_dir, bool bf16,
                                             const std::string& config_dir) {
  auto file = open_tensor_file(path);  // .safetensors or GGUF (stable-diffusion.cpp keeps the CompVis names)
  const TensorFile& f = *file;
  if (f.has("conditioner.embedders.0.transformer.text_model.embeddings.token_embedding.weight") ||
      f.has("conditioner.embedders.0.model.token_embedding.weight"))
    return load_sgm_checkpoint(file, tokenizer_dir, bf16, config_dir);
  if (!f.has(std::string(kUnet) + "input_blocks.0.0.weight")) unknown_family(f);
  const bool sd1 = f.has("cond_stage_model.transformer.text_model.embeddings.token_embedding.weight") ||
                   f.has("cond_stage_model.transformer.embeddings.token_embedding.weight");
  const bool sd2 = f.has("cond_stage_model.model.token_embedding.weight");
  if (!sd1 && !sd2) unknown_family(f);
  const A1111YamlHints yaml = read_a1111_yaml(path);
  auto m = std::make_unique<SdModel>();

  // ---- UNet config from shapes ----
  UNetConfig uc;
  const auto& conv_in = need(f, std::string(kUnet) + "input_blocks.0.0.weight");
  uc.in_channels = conv_in.shape[1];
  uc.out_channels = need(f, std::string(kUnet) + "out.2.weight").shape[0];
  const int n_in = count_indices(f, std::string(kUnet) + "input_blocks.");
  int levels = 1;
  for (int k = 0; k < n_in; ++k)
    if (f.has(std::string(kUnet) + "input_blocks." + std::to_string(k) + ".0.op.weight")) ++levels;
  const int L = (n_in - 1 - (levels - 1)) / levels;
  if (L <= 0 || 1 + levels * L + (levels - 1) != n_in)
    fail(ErrorCode::kCorruptFile, "'" + path + "' has an unexpected UNet block layout");
  uc.block_out_channels.clear();
  uc.down_block_types.clear();
  uc.up_block_types.clear();
  int64_t ctx_dim = 768;
  for (int i = 0; i < levels; ++i) {
    const std::string b = std::string(kUnet) + "input_blocks." + std::to_string(1 + i * (L + 1));
    uc.block_out_channels.push_back(need(f, b + ".0.out_layers.3.weight").shape[0]);
    const bool attn = f.has(b + ".1.proj_in.weight");
    uc.down_block_types.push_back(attn ? "CrossAttnDownBlock2D" : "DownBlock2D");
    if (attn) {
      ctx_dim = need(f, b + ".1.transformer_blocks.0.attn2.to_k.weight").shape[1];
      uc.use_linear_projection = f.info(b + ".1.proj_in.weight").shape.size() == 2;
    }
    const std::string ub = std::string(kUnet) + "output_blocks." + std::to_string(i * (L + 1));
    uc.up_block_types.push_back(f.has(ub + ".1.proj_in.weight") ? "CrossAttnUpBlock2D" : "UpBlock2D");
  }
  const size_t n = uc.block_out_channels.size();
  uc.layers_per_block.assign(n, L);
  uc.cross_attention_dim.assign(n, ctx_dim);
  uc.transformer_layers.assign(n, 1);
  uc.num_heads.clear();
  for (int64_t ch : uc.block_out_channels) {
    int64_t heads = sd1 ? 8 : ch / 64;  // SD1: 8 heads; SD2: 64-dim heads
    if (yaml.num_heads > 0) heads = yaml.num_heads;
    if (yaml.num_head_channels > 0) heads = ch / yaml.num_head_channels;
    uc.num_heads.push_back(std::max<int64_t>(1, heads));
  }
  const bool vpred = yaml.parameterization == "v";
  uc.sample_size = (sd2 && vpred) ? 96 : 64;
  // Files written by `visiongen convert` record what the weights cannot reveal.
  const auto& meta = f.metadata();
  auto meta_int = [&](const char* key, int64_t fallback) {
    auto it = meta.find(key);
    if (it == meta.end()) return fallback;
    try {
      return static_cast<int64_t>(std::stoll(it->second));
    } catch (const std::exception&) {
      fail(ErrorCode::kCorruptFile, "'" + path + "' metadata '" + key + "' is not an integer");
    }
  };
  uc.sample_size = meta_int("visiongen.unet_sample_size", uc.sample_size);
  for (size_t i = 0; i < n; ++i)
    uc.num_heads[i] = meta_int(("visiongen.unet_heads." + std::to_string(i)).c_str(), uc.num_heads[i]);
  if (!config_dir.empty() && path_exists(config_dir + "/unet/config.json")) {
    const UNetConfig given = UNetConfig::from_json_file(config_dir + "/unet/config.json");
    if (given.num_heads.size() == n) uc.num_heads = given.num_heads;
    uc.sample_size = given.sample_size;
  }
  std::vector<bool> up_attn;
  for (auto& t : uc.up_block_types) up_attn.push_back(t == "CrossAttnUpBlock2D");
  m->unet_layers = std::make_shared<LayerRegistry>();
  m->text_encoder_layers = std::make_shared<LayerRegistry>();
  {
    WeightStore uw = with_bf16(renamed_store(file, [L, up_attn](const std::string& n) { return unet_to_ldm(n, L, up_attn); }), bf16);
    uw.set_layer_registry(m->unet_layers);
    m->unet = std::make_unique<UNet>(uc, uw);
    m->unet_sgm_name = unet_sgm_namer(uc);
  }

  // ---- VAE ----
  const VaeConfig vc = infer_ldm_vae_config(f);
  const int vlevels = static_cast<int>(vc.block_out_channels.size());
  m->vae = std::make_unique<AutoencoderKL>(
      vc, with_bf16(renamed_store(file, [vlevels](const std::string& n) { return vae_to_ldm(n, vlevels); }), bf16));

  // ---- Text encoder ----
  ClipTextConfig tc;
  WeightStore tw;
  if (sd1) {
    const bool nested = f.has("cond_stage_model.transformer.text_model.embeddings.token_embedding.weight");
    const std::string base = nested ? "cond_stage_model.transformer.text_model." : "cond_stage_model.transformer.";
    const auto& tok = f.info(base + "embeddings.token_embedding.weight");
    tc.vocab_size = tok.shape[0];
    tc.hidden_size = tok.shape[1];
    tc.num_layers = count_indices(f, base + "encoder.layers.");
    tc.intermediate_size = need(f, base + "encoder.layers.0.mlp.fc1.weight").shape[0];
    tc.num_heads = tc.hidden_size / 64;
    tc.max_positions = need(f, base + "embeddings.position_embedding.weight").shape[0];
    tc.act = Act::kQuickGelu;
    tw = renamed_store(file, [nested](const std::string& n) {
      return nested ? clip_to_ldm(n) : "cond_stage_model.transformer." + n.substr(std::string("text_model.").size());
    });
  } else {
    const std::string P = "cond_stage_model.model.";
    const auto& tok = f.info(P + "token_embedding.weight");
    tc.vocab_size = tok.shape[0];
    tc.hidden_size = tok.shape[1];
    // diffusers keeps 23 of OpenCLIP-H's 24 layers: SD2 uses the penultimate one.
    tc.num_layers = count_indices(f, P + "transformer.resblocks.") - 1;
    tc.intermediate_size = need(f, P + "transformer.resblocks.0.mlp.c_fc.weight").shape[0];
    tc.num_heads = tc.hidden_size / 64;
    tc.max_positions = need(f, P + "positional_embedding").shape[0];
    tc.act = Act::kGelu;
    const int64_t c = tc.hidden_size;
    tw = openclip_store(file, P, c);
  }
  tc.num_heads = std::max<int64_t>(1, meta_int("visiongen.text_heads", tc.num_heads));
  // A config folder (diffusers' from_single_file(config=)) gives what shapes cannot: heads.
  if (!config_dir.empty() && path_exists(config_dir + "/text_encoder/config.json"))
    tc.num_heads = ClipTextConfig::from_json_file(config_dir + "/text_encoder/config.json").num_heads;
  tw.set_compute_bf16(bf16);
  tw.set_layer_registry(m->text_encoder_layers);
  m->text_encoder = std::make_unique<ClipTextModel>(tc, tw, "", /*lazy=*/true);
  const std::string tok_dir = find_tokenizer(path, tokenizer_dir.empty() && !config_dir.empty() &&
                                                    path_exists(config_dir + "/tokenizer/vocab.json")
                                                ? config_dir + "/tokenizer" : tokenizer_dir, sd2);
  m->tokenizer = std::make_unique<ClipTokenizer>(
      tok_dir.empty() ? ClipTokenizer::builtin(sd2 ? "!" : "<|endoftext|>") : ClipTokenizer::load(tok_dir));
  if (sd2 && m->tokenizer->pad_id() == m->tokenizer->eos_id()) m->tokenizer->set_pad_token("!");
  // Files written by 'visiongen convert' carry the folder's scheduler config.
  auto sc = meta.find("visiongen.scheduler_config");
  if (sc != meta.end()) {
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(sc->second);
    } catch (const nlohmann::json::exception&) {
      fail(ErrorCode::kCorruptFile, "'" + path + "' metadata 'visiongen.scheduler_config' is not valid JSON");
    }
    m->scheduler = SchedulerConfig::from_json(j, "'" + path + "' scheduler metadata");
  } else {
    m->scheduler = SchedulerConfig::sd15_default();
  }
  if (vpred) m->scheduler.prediction_type = "v_prediction";
  return m;
}

void convert_diffusers_to_ldm(const std::string& dir, const std::string& out_path) {
  if (path_exists(dir + "/text_encoder_2/config.json")) return convert_sdxl_to_sgm(dir, out_path);
  // Only the configs are needed to map names; the weights are copied as stored.
  const UNetConfig uc = UNetConfig::from_json_file(dir + "/unet/config.json");
  const ClipTextConfig tc = ClipTextConfig::from_json_file(dir + "/text_encoder/config.json");
  const VaeConfig vc = VaeConfig::from_json_file(dir + "/vae/config.json");
  if (tc.act != Act::kQuickGelu)
    fail(ErrorCode::kUnsupportedModel, "convert supports SD 1.x and SDXL folders only");
  std::set<int64_t> lpb(uc.layers_per_block.begin(), uc.layers_per_block.end());
  if (lpb.size() != 1) fail(ErrorCode::kUnsupportedModel, "LDM layout needs the same layers_per_block everywhere");
  std::vector<bool> up_attn;
  for (auto& t : uc.up_block_types) up_attn.push_back(t == "CrossAttnUpBlock2D");
  const int L = static_cast<int>(*lpb.begin());
  const int vlevels = static_cast<int>(vc.block_out_channels.size());
  std::vector<TensorToWrite> out;
  std::vector<WeightStore> keep;
  auto add = [&](const std::string& comp, auto map_name) {
    keep.push_back(open_component_weights(dir + "/" + comp, comp));
    for (auto& [name, info] : keep.back().entries()) {
      Shape s = info->shape;
      const std::string ldm = map_name(name);
      // LDM VAE attention projections are 1x1 convolutions.
      if (comp == "vae" && ldm.find(".attn_1.") != std::string::npos && s.size() == 2) s = {s[0], s[1], 1, 1};
      out.push_back(TensorToWrite{ldm, info->dtype, s, info->data});
    }
  };
  add("unet", [&](const std::string& n) { return unet_to_ldm(n, L, up_attn); });
  add("vae", [&](const std::string& n) { return vae_to_ldm(n, vlevels); });
  add("text_encoder", [&](const std::string& n) { return clip_to_ldm(n); });
  std::map<std::string, std::string> meta{{"format", "pt"}, {"converted_by", "visiongen"}};
  meta["visiongen.text_heads"] = std::to_string(tc.num_heads);
  meta["visiongen.unet_sample_size"] = std::to_string(uc.sample_size);
  for (size_t i = 0; i < uc.num_heads.size(); ++i)
    meta["visiongen.unet_heads." + std::to_string(i)] = std::to_string(uc.num_heads[i]);
  if (path_exists(dir + "/scheduler/scheduler_config.json"))
    meta["visiongen.scheduler_config"] = read_json_file(dir + "/scheduler/scheduler_config.json", "scheduler").dump();
  write_safetensors(out_path, out, meta);
}

}  // namespace vg
