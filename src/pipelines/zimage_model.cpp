#include "pipelines/zimage_model.h"

#include <algorithm>
#include <filesystem>

#include "core/error.h"
#include "io/atomic_file.h"
#include "io/hf_cache.h"
#include "io/tensor_file.h"
#include "models/zimage_names.h"
#include "pipelines/dit_components.h"
#include "pipelines/qwen_components.h"

namespace vg {

namespace fs = std::filesystem;

namespace {

// Z-Image-Turbo's published scheduler config (static shift 3).
SchedulerConfig default_scheduler() {
  const nlohmann::json j = {{"_class_name", "FlowMatchEulerDiscreteScheduler"},
                            {"num_train_timesteps", 1000},
                            {"shift", 3.0},
                            {"use_dynamic_shifting", false}};
  return SchedulerConfig::from_json(j, "the Z-Image default scheduler");
}

WeightStore open_transformer(const std::string& tpath) {
  if (is_folder(tpath)) return zimage_weights_from_diffusers(open_component_weights(tpath, "transformer"));
  if (!path_exists(tpath)) fail(ErrorCode::kFileNotFound, "transformer file '" + tpath + "' does not exist");
  auto f = open_tensor_file(tpath);
  if (!is_zimage_file(*f) && !is_zimage_diffusers(*f))
    fail(ErrorCode::kUnsupportedModel, "'" + tpath + "' holds no Z-Image transformer (no layers.0.attention.*); pass "
                                       "z_image_turbo_bf16.safetensors, a Z-Image GGUF or a diffusers Z-Image folder");
  WeightStore w = zimage_file_weights(f);
  if (is_zimage_file(*f)) w.track_used();  // original names: every tensor must be one the model reads
  return w;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

}  // namespace

std::unique_ptr<ZImageModel> load_zimage_model(const std::string& path, const LoadOptions& opts, bool bf16) {
  auto m = std::make_unique<ZImageModel>();
  const bool folder = is_folder(path);
  const std::string base = folder ? path : opts.config_dir;  // where components and configs come from
  auto sub = [&](const char* s) { return base.empty() ? std::string() : base + "/" + s; };
  // ---- transformer ----
  const std::string tpath = !opts.transformer_file.empty() ? opts.transformer_file : folder ? path + "/transformer" : path;
  WeightStore tw = open_transformer(tpath);
  tw.set_compute_bf16(bf16);
  const std::string tconfig = first_config({tpath, sub("transformer")});
  m->config = tconfig.empty() ? ZImageConfig::from_weights(tw) : ZImageConfig::from_json_file(tconfig);
  m->transformer = std::make_unique<ZImageTransformer>(m->config, tw);
  refuse_unknown_tensors(tw, tpath, "Z-Image", {"norm_final.weight"});
  // ---- Qwen3 text encoder and tokenizer ----
  const std::string te = find_component(opts.text_encoder, opts.config_dir, "text_encoder", path, {"qwen_3", "qwen3"});
  if (te.empty())
    fail(ErrorCode::kMissingComponent, "this Z-Image transformer comes without its Qwen3 text encoder; pass "
                                       "--text-encoder FILE (ComfyUI's qwen_3_4b.safetensors or a Qwen3-4B GGUF) and "
                                       "--tokenizer DIR, put them beside the model, or pass --config with a diffusers "
                                       "Z-Image folder");
  m->text_encoder = load_qwen_component({te, "", sub("text_encoder")}, bf16, "text_encoder");
  const QwenTextConfig& tc = m->text_encoder->config();
  if (!m->text_encoder->has_qk_norm())
    fail(ErrorCode::kShapeMismatch, "the text encoder '" + te + "' is not a Qwen3 model (no q/k norms: a Qwen2/2.5 "
                                    "one?); Z-Image encodes prompts with Qwen3-4B, pass that with --text-encoder");
  if (tc.hidden_size != m->config.cap_feat_dim)
    fail(ErrorCode::kShapeMismatch, "the text encoder is " + std::to_string(tc.hidden_size) + " wide but this Z-Image "
                                    "transformer takes " + std::to_string(m->config.cap_feat_dim) +
                                    "-wide text states; pass the Qwen3 encoder it was trained with (Qwen3-4B: 2560)");
  const std::string te_parent = fs::path(te).parent_path().string();
  m->tokenizer = load_qwen_tokenizer({sub("tokenizer"), opts.tokenizer_dir, te_parent + "/tokenizer", te}, "Z-Image", true);
  // ---- VAE, scheduler, info ----
  const std::string vae = find_component(opts.vae_file, opts.config_dir, "vae", path, {"ae.", "ae-", "ae_", "flux_vae", "z_image_vae", "vae"});
  if (vae.empty())
    fail(ErrorCode::kMissingComponent, "no VAE for this Z-Image model; pass --vae ae.safetensors (the FLUX.1 VAE) or a "
                                       "diffusers vae folder");
  m->parts.vae = kl_latent_codec(load_vae_component({vae, "", sub("vae")}, bf16, dit_vae_defaults(0.3611f, 0.1159f) /* FLUX.1's ae */));
  if (m->parts.vae->channels() != m->config.in_channels)
    fail(ErrorCode::kShapeMismatch, "the VAE has " + std::to_string(m->parts.vae->channels()) +
                                    " latent channels but this Z-Image transformer takes " +
                                    std::to_string(m->config.in_channels) + "; pass the FLUX.1 VAE (ae.safetensors)");
  const std::string sched = sub("scheduler") + "/scheduler_config.json";
  m->parts.scheduler = !base.empty() && path_exists(sched) ? SchedulerConfig::from_json_file(sched) : default_scheduler();
  m->parts.info = dit_model_info("zimage", path, *m->parts.vae, m->config.patch_size, 1024);
  m->turbo = lower(m->parts.info.name).find("turbo") != std::string::npos || lower(path).find("turbo") != std::string::npos;
  m->parts.hash_source = folder ? weight_files(path + "/transformer").front() : tpath;
  return m;
}

}  // namespace vg
