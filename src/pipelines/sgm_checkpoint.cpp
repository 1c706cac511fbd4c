// SDXL single files in Stability's SGM layout, as A1111/ComfyUI/Civitai hold
// them: conditioner.embedders.0 (CLIP-L, transformers names) and .1 (OpenCLIP
// bigG), model.diffusion_model (input/middle/output blocks, label_emb) and
// first_stage_model. The refiner has OpenCLIP alone as embedders.0.
#include <filesystem>
#include <optional>
#include <set>

#include "core/error.h"
#include "io/atomic_file.h"
#include "lora/layer_registry.h"
#include "models/config_util.h"
#include "pipelines/ldm_checkpoint.h"
#include "pipelines/ldm_common.h"
#include "pipelines/ldm_names.h"
#include "pipelines/sd_model.h"

namespace vg {

namespace fs = std::filesystem;

namespace {

const std::string kUnetP = "model.diffusion_model.";

// UNet config from tensor shapes (SDXL conventions: 64-dim heads, 1024² native size).
UNetConfig infer_unet(const TensorFile& f, int64_t pooled_dim, bool refiner) {
  UNetConfig uc;
  uc.in_channels = need(f, kUnetP + "input_blocks.0.0.weight").shape[1];
  uc.out_channels = need(f, kUnetP + "out.2.weight").shape[0];
  const int n_in = count_indices(f, kUnetP + "input_blocks.");
  int levels = 1;
  for (int k = 0; k < n_in; ++k)
    if (f.has(kUnetP + "input_blocks." + std::to_string(k) + ".0.op.weight")) ++levels;
  const int L = (n_in - 1 - (levels - 1)) / levels;
  if (L <= 0 || 1 + levels * L + (levels - 1) != n_in)
    fail(ErrorCode::kCorruptFile, "'" + f.path() + "' has an unexpected UNet block layout");
  uc.block_out_channels.clear();
  uc.down_block_types.clear();
  uc.up_block_types.clear();
  int64_t ctx = 2048;
  for (int i = 0; i < levels; ++i) {
    const std::string b = kUnetP + "input_blocks." + std::to_string(1 + i * (L + 1));
    const int64_t ch = need(f, b + ".0.out_layers.3.weight").shape[0];
    uc.block_out_channels.push_back(ch);
    const bool attn = f.has(b + ".1.proj_in.weight");
    uc.down_block_types.push_back(attn ? "CrossAttnDownBlock2D" : "DownBlock2D");
    uc.transformer_layers.push_back(attn ? std::max(1, count_indices(f, b + ".1.transformer_blocks.")) : 1);
    if (attn) {
      ctx = need(f, b + ".1.transformer_blocks.0.attn2.to_k.weight").shape[1];
      uc.use_linear_projection = f.info(b + ".1.proj_in.weight").shape.size() == 2;
    }
    uc.num_heads.push_back(std::max<int64_t>(1, ch / 64));
    const std::string ub = kUnetP + "output_blocks." + std::to_string(i * (L + 1));
    uc.up_block_types.push_back(f.has(ub + ".1.proj_in.weight") ? "CrossAttnUpBlock2D" : "UpBlock2D");
  }
  const size_t n = uc.block_out_channels.size();
  uc.layers_per_block.assign(n, L);
  uc.cross_attention_dim.assign(n, ctx);
  uc.sample_size = 128;
  // label_emb.0.0: [temb, pooled + n_ids * d]; base has 6 time ids, the refiner 5.
  const int64_t add_in = need(f, kUnetP + "label_emb.0.0.weight").shape[1];
  uc.projection_class_embeddings_input_dim = add_in;
  const int64_t ids = refiner ? 5 : 6;
  uc.addition_time_embed_dim = (add_in - pooled_dim) / ids;
  if (uc.addition_time_embed_dim <= 0 || pooled_dim + ids * uc.addition_time_embed_dim != add_in)
    fail(ErrorCode::kCorruptFile, "'" + f.path() + "': label_emb takes " + std::to_string(add_in) +
                                      " inputs, which does not fit a " + std::to_string(pooled_dim) +
                                      "-wide pooled text embedding plus time ids");
  return uc;
}

ClipTextConfig infer_clip_l(const TensorFile& f, const std::string& base) {
  ClipTextConfig tc;
  const auto& tok = need(f, base + "embeddings.token_embedding.weight");
  tc.vocab_size = tok.shape[0];
  tc.hidden_size = tok.shape[1];
  tc.num_layers = count_indices(f, base + "encoder.layers.");
  tc.intermediate_size = need(f, base + "encoder.layers.0.mlp.fc1.weight").shape[0];
  tc.num_heads = std::max<int64_t>(1, tc.hidden_size / 64);
  tc.max_positions = need(f, base + "embeddings.position_embedding.weight").shape[0];
  tc.act = Act::kQuickGelu;
  return tc;
}

ClipTextConfig infer_openclip(const TensorFile& f, const std::string& P) {
  ClipTextConfig tc;
  const auto& tok = need(f, P + "token_embedding.weight");
  tc.vocab_size = tok.shape[0];
  tc.hidden_size = tok.shape[1];
  tc.num_layers = count_indices(f, P + "transformer.resblocks.");  // SDXL keeps every layer
  tc.intermediate_size = need(f, P + "transformer.resblocks.0.mlp.c_fc.weight").shape[0];
  tc.num_heads = std::max<int64_t>(1, tc.hidden_size / 64);
  tc.max_positions = need(f, P + "positional_embedding").shape[0];
  tc.act = Act::kGelu;
  tc.projection_dim = need(f, P + "text_projection").shape[1];
  return tc;
}

std::unique_ptr<ClipTokenizer> tokenizer_for(const std::string& ckpt, const std::string& config_dir,
                                             const char* sub, const std::string& given, bool pad_bang) {
  std::string dir = !config_dir.empty() && is_directory(config_dir + "/" + sub) ? config_dir + "/" + sub : "";
  if (dir.empty()) dir = find_tokenizer(ckpt, given, false);
  // No folder anywhere: the CLIP BPE vocabulary built into visiongen.
  auto t = std::make_unique<ClipTokenizer>(dir.empty() ? ClipTokenizer::builtin() : ClipTokenizer::load(dir));
  if (pad_bang && (dir.empty() || dir.find(sub) == std::string::npos)) t->set_pad_token("!");  // OpenCLIP pads with "!" (id 0)
  t->set_flavor(ClipTokenizer::Flavor::kFast);  // transformers' fast CLIPTokenizer, as diffusers uses for SDXL
  return t;
}

}  // namespace

std::unique_ptr<SdModel> load_sgm_checkpoint(const std::shared_ptr<TensorFile>& file,
                                             const std::string& tokenizer_dir, bool bf16, const std::string& config_dir) {
  const TensorFile& f = *file;
  const std::string& path = f.path();
  if (!config_dir.empty() && !path_exists(config_dir + "/unet/config.json"))
    fail(ErrorCode::kMissingComponent, "model config folder '" + config_dir +
                                           "' has no unet/config.json; pass a diffusers SDXL folder");
  const bool refiner = f.has("conditioner.embedders.0.model.token_embedding.weight");
  const std::string te1 = "conditioner.embedders.0.transformer.text_model.";
  const std::string te2 = refiner ? "conditioner.embedders.0.model." : "conditioner.embedders.1.model.";
  auto m = std::make_unique<SdModel>();
  m->unet_layers = std::make_shared<LayerRegistry>();
  m->text_encoder_layers = std::make_shared<LayerRegistry>();
  m->text_encoder_2_layers = std::make_shared<LayerRegistry>();
  auto cfg_path = [&](const char* comp) { return config_dir + "/" + comp + "/config.json"; };
  // Files written by `visiongen convert` carry their folder's configs as metadata.
  auto meta_json = [&](const std::string& key) -> std::optional<nlohmann::json> {
    auto it = f.metadata().find("visiongen." + key);
    if (!config_dir.empty() || it == f.metadata().end()) return std::nullopt;
    try {
      return nlohmann::json::parse(it->second);
    } catch (const nlohmann::json::exception&) {
      fail(ErrorCode::kCorruptFile, "'" + path + "' metadata 'visiongen." + key + "' is not valid JSON");
    }
  };
  auto meta_where = [&](const std::string& key) { return path + " metadata visiongen." + key; };

  // ---- text encoders ----
  const auto m2 = meta_json("text_encoder_2_config");
  ClipTextConfig c2 = m2 ? ClipTextConfig::from_json(*m2, meta_where("text_encoder_2_config"))
                   : config_dir.empty() ? infer_openclip(f, te2) : ClipTextConfig::from_json_file(cfg_path("text_encoder_2"));
  c2.projection_transposed = true;
  if (c2.projection_dim <= 0) c2.projection_dim = need(f, te2 + "text_projection").shape[1];
  WeightStore w2 = openclip_store(file, te2, c2.hidden_size);
  w2.set_compute_bf16(bf16);
  w2.set_layer_registry(m->text_encoder_2_layers);
  m->text_encoder_2 = std::make_unique<ClipTextModel>(c2, w2, "", /*lazy=*/true);
  m->tokenizer_2 = tokenizer_for(path, config_dir, "tokenizer_2", tokenizer_dir, true);
  if (!refiner) {
    const auto m1 = meta_json("text_encoder_config");
    const ClipTextConfig c1 = m1 ? ClipTextConfig::from_json(*m1, meta_where("text_encoder_config"))
                              : config_dir.empty() ? infer_clip_l(f, te1) : ClipTextConfig::from_json_file(cfg_path("text_encoder"));
    WeightStore w1 = renamed_store(file, [](const std::string& n) { return "conditioner.embedders.0.transformer." + n; });
    w1.set_compute_bf16(bf16);
    w1.set_layer_registry(m->text_encoder_layers);
    m->text_encoder = std::make_unique<ClipTextModel>(c1, w1, "", /*lazy=*/true);
    m->tokenizer = tokenizer_for(path, config_dir, "tokenizer", tokenizer_dir, false);
  }

  // ---- UNet ----
  const auto mu = meta_json("unet_config");
  const UNetConfig uc = mu ? UNetConfig::from_json(*mu, meta_where("unet_config"))
                        : config_dir.empty() ? infer_unet(f, c2.projection_dim, refiner) : UNetConfig::from_json_file(cfg_path("unet"));
  if (!uc.has_text_time()) fail(ErrorCode::kCorruptFile, "'" + config_dir + "/unet/config.json' is not an SDXL UNet");
  std::set<int64_t> lpb(uc.layers_per_block.begin(), uc.layers_per_block.end());
  if (lpb.size() != 1) fail(ErrorCode::kUnsupportedModel, "SGM layout needs the same layers_per_block everywhere");
  const int L = static_cast<int>(*lpb.begin());
  std::vector<bool> up_attn;
  for (auto& t : uc.up_block_types) up_attn.push_back(t == "CrossAttnUpBlock2D");
  WeightStore wu = renamed_store(file, [L, up_attn](const std::string& n) {
    if (n.rfind("add_embedding.linear_1.", 0) == 0) return kUnetP + "label_emb.0.0." + n.substr(23);
    if (n.rfind("add_embedding.linear_2.", 0) == 0) return kUnetP + "label_emb.0.2." + n.substr(23);
    return unet_to_ldm(n, L, up_attn);
  });
  wu.set_compute_bf16(bf16);
  wu.set_layer_registry(m->unet_layers);
  m->unet = std::make_unique<UNet>(uc, wu);
  m->unet_sgm_name = unet_sgm_namer(uc);

  // ---- VAE ----
  VaeConfig vc;
  if (const auto mv = meta_json("vae_config")) {
    vc = VaeConfig::from_json(*mv, meta_where("vae_config"));
  } else if (config_dir.empty()) {
    vc = infer_ldm_vae_config(f);
    vc.scaling_factor = 0.13025f;  // SDXL's VAE
  } else {
    vc = VaeConfig::from_json_file(cfg_path("vae"));
  }
  const int vlevels = static_cast<int>(vc.block_out_channels.size());
  WeightStore wv = renamed_store(file, [vlevels](const std::string& n) { return vae_to_ldm(n, vlevels); });
  wv.set_compute_bf16(bf16);
  m->vae = std::make_unique<AutoencoderKL>(vc, wv);

  // ---- scheduler and pipeline options ----
  const std::string sched = config_dir + "/scheduler/scheduler_config.json";
  m->scheduler = !config_dir.empty() && path_exists(sched) ? SchedulerConfig::from_json_file(sched)
                                                           : SchedulerConfig::sdxl_default();
  if (const auto ms = meta_json("scheduler_config")) m->scheduler = SchedulerConfig::from_json(*ms, meta_where("scheduler_config"));
  // v-prediction finetunes (e.g. NoobAI v-pred) mark themselves with these keys, as ComfyUI reads them.
  if (f.has("v_pred")) m->scheduler.prediction_type = "v_prediction";
  if (f.has("ztsnr")) m->scheduler.rescale_betas_zero_snr = true;
  m->force_zeros_for_empty_prompt = !refiner;
  m->requires_aesthetics_score = refiner;
  std::optional<nlohmann::json> index = meta_json("model_index");
  if (!config_dir.empty() && path_exists(config_dir + "/model_index.json"))
    index = read_json_file(config_dir + "/model_index.json", "pipeline");
  if (index && index->is_object()) {
    m->force_zeros_for_empty_prompt = index->value("force_zeros_for_empty_prompt", m->force_zeros_for_empty_prompt);
    m->requires_aesthetics_score = index->value("requires_aesthetics_score", m->requires_aesthetics_score);
  }
  return m;
}

}  // namespace vg
