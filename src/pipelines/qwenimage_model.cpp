#include "pipelines/qwenimage_model.h"

#include <filesystem>

#include "core/error.h"
#include "io/atomic_file.h"
#include "io/hf_cache.h"
#include "io/tensor_file.h"
#include "pipelines/dit_components.h"
#include "pipelines/qwen_components.h"

namespace vg {

namespace fs = std::filesystem;

namespace {

// Qwen/Qwen-Image's published scheduler config (dynamic exponential shift, terminal 0.02).
SchedulerConfig default_scheduler() {
  const nlohmann::json j = {{"_class_name", "FlowMatchEulerDiscreteScheduler"},
                            {"num_train_timesteps", 1000},
                            {"shift", 1.0},
                            {"use_dynamic_shifting", true},
                            {"base_shift", 0.5},
                            {"max_shift", 0.9},
                            {"base_image_seq_len", 256},
                            {"max_image_seq_len", 8192},
                            {"shift_terminal", 0.02},
                            {"time_shift_type", "exponential"}};
  return SchedulerConfig::from_json(j, "the Qwen-Image default scheduler");
}

WeightStore open_transformer(const std::string& tpath) {
  if (is_folder(tpath)) return open_component_weights(tpath, "transformer");
  if (!path_exists(tpath)) fail(ErrorCode::kFileNotFound, "transformer file '" + tpath + "' does not exist");
  auto f = open_tensor_file(tpath);
  if (!is_qwenimage_file(*f))
    fail(ErrorCode::kUnsupportedModel, "'" + tpath + "' holds no Qwen-Image transformer (no transformer_blocks.0."
                                       "img_mod.*); pass qwen_image_*.safetensors, a Qwen-Image GGUF or a diffusers "
                                       "Qwen-Image folder");
  WeightStore w = qwenimage_file_weights(f);
  w.track_used();
  return w;
}

}  // namespace

std::unique_ptr<QwenImageModel> load_qwenimage_model(const std::string& path, const LoadOptions& opts, bool bf16) {
  auto m = std::make_unique<QwenImageModel>();
  const bool folder = is_folder(path);
  const std::string base = folder ? path : opts.config_dir;
  auto sub = [&](const char* s) { return base.empty() ? std::string() : base + "/" + s; };
  // ---- transformer ----
  const std::string tpath = !opts.transformer_file.empty() ? opts.transformer_file : folder ? path + "/transformer" : path;
  WeightStore tw = open_transformer(tpath);
  tw.set_compute_bf16(bf16);
  const std::string tconfig = first_config({tpath, sub("transformer")});
  m->config = tconfig.empty() ? QwenImageConfig::from_weights(tw) : QwenImageConfig::from_json_file(tconfig);
  m->transformer = std::make_unique<QwenImageTransformer>(m->config, tw);
  if (!is_folder(tpath)) refuse_unknown_tensors(tw, tpath, "Qwen-Image");
  // ---- Qwen2.5-VL text encoder and tokenizer ----
  const std::string te = find_component(opts.text_encoder, opts.config_dir, "text_encoder", path,
                                        {"qwen_2.5_vl", "qwen2.5_vl", "qwen2.5-vl", "qwen_2_5_vl"});
  if (te.empty())
    fail(ErrorCode::kMissingComponent, "this Qwen-Image transformer comes without its Qwen2.5-VL text encoder; pass "
                                       "--text-encoder FILE (ComfyUI's qwen_2.5_vl_7b.safetensors or a GGUF) and "
                                       "--tokenizer DIR, put them beside the model, or pass --config with a diffusers "
                                       "Qwen-Image folder");
  m->text_encoder = load_qwen_component({te, "", sub("text_encoder")}, bf16, "text_encoder");
  const QwenTextConfig& tc = m->text_encoder->config();
  if (m->text_encoder->has_qk_norm())
    fail(ErrorCode::kShapeMismatch, "the text encoder '" + te + "' is a Qwen3 model (it has q/k norms); Qwen-Image "
                                    "encodes prompts with Qwen2.5-VL-7B's language model, pass that with --text-encoder");
  if (tc.hidden_size != m->config.joint_attention_dim)
    fail(ErrorCode::kShapeMismatch, "the text encoder is " + std::to_string(tc.hidden_size) + " wide but this "
                                    "Qwen-Image transformer takes " + std::to_string(m->config.joint_attention_dim) +
                                    "-wide text states; pass Qwen2.5-VL-7B's language model (3584)");
  const std::string te_parent = fs::path(te).parent_path().string();
  m->tokenizer = load_qwen_tokenizer({sub("tokenizer"), opts.tokenizer_dir, te_parent + "/tokenizer", te}, "Qwen-Image", false);
  // ---- VAE, scheduler, info ----
  const std::string vae = find_component(opts.vae_file, opts.config_dir, "vae", path,
                                         {"qwen_image_vae", "wan_2.1_vae", "wan2.1_vae", "vae"});
  if (vae.empty())
    fail(ErrorCode::kMissingComponent, "no VAE for this Qwen-Image model; pass --vae qwen_image_vae.safetensors "
                                       "(the Wan 2.1 VAE) or a diffusers vae folder");
  m->parts.vae = wan_latent_codec(load_wan_vae_component({vae, "", sub("vae")}, bf16));
  if (m->parts.vae->channels() * m->config.patch_size * m->config.patch_size != m->config.in_channels)
    fail(ErrorCode::kShapeMismatch, "the VAE has " + std::to_string(m->parts.vae->channels()) + " latent channels "
                                    "but this Qwen-Image transformer takes " + std::to_string(m->config.in_channels) +
                                    " packed features; pass Qwen-Image's VAE");
  const std::string sched = sub("scheduler") + "/scheduler_config.json";
  m->parts.scheduler = !base.empty() && path_exists(sched) ? SchedulerConfig::from_json_file(sched) : default_scheduler();
  m->parts.info = dit_model_info("qwenimage", path, *m->parts.vae, m->config.patch_size, 1328);
  m->parts.hash_source = folder ? weight_files(path + "/transformer").front() : tpath;
  return m;
}

}  // namespace vg
