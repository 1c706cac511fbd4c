#include "pipelines/wan_model.h"

#include <filesystem>

#include "core/error.h"
#include "io/atomic_file.h"
#include "io/tensor_file.h"
#include "models/wan_names.h"
#include "pipelines/dit_components.h"

namespace vg {

namespace fs = std::filesystem;

namespace {

// Wan2.2-TI2V-5B-Diffusers' scheduler_config.json: UniPC in flow form, shift 5.
SchedulerConfig default_scheduler() {
  const nlohmann::json j = {{"_class_name", "UniPCMultistepScheduler"},
                            {"num_train_timesteps", 1000},
                            {"prediction_type", "flow_prediction"},
                            {"use_flow_sigmas", true},
                            {"flow_shift", 5.0},
                            {"solver_order", 2},
                            {"solver_type", "bh2"},
                            {"predict_x0", true},
                            {"lower_order_final", true},
                            {"final_sigmas_type", "zero"},
                            {"timestep_spacing", "linspace"}};
  return SchedulerConfig::from_json(j, "the Wan 2.2 default scheduler");
}

WeightStore open_transformer(const std::string& tpath) {
  if (is_folder(tpath)) return wan_weights_from_diffusers(open_component_weights(tpath, "transformer"));
  if (!path_exists(tpath)) fail(ErrorCode::kFileNotFound, "transformer file '" + tpath + "' does not exist");
  auto f = open_tensor_file(tpath);
  if (!is_wan_transformer_file(*f))
    fail(ErrorCode::kUnsupportedModel, "'" + tpath + "' holds no Wan transformer (no blocks.0.self_attn.* or "
                                       "blocks.0.attn1.*); pass wan2.2_ti2v_5B_fp16.safetensors, a Wan GGUF or a "
                                       "diffusers Wan folder");
  WeightStore w = wan_file_weights(f);
  w.track_used();
  return w;
}

}  // namespace

std::unique_ptr<WanModel> load_wan_model(const std::string& path, const LoadOptions& opts, bool bf16) {
  auto m = std::make_unique<WanModel>();
  const bool folder = is_folder(path);
  const std::string base = folder ? path : opts.config_dir;  // where components and configs come from
  auto sub = [&](const char* s) { return base.empty() ? std::string() : base + "/" + s; };
  // ---- transformer ----
  const std::string tpath = !opts.transformer_file.empty() ? opts.transformer_file : folder ? path + "/transformer" : path;
  WeightStore tw = open_transformer(tpath);
  tw.set_compute_bf16(bf16);
  const std::string tconfig = first_config({tpath, sub("transformer")});
  m->config = tconfig.empty() ? WanTransformerConfig::from_weights(tw) : WanTransformerConfig::from_json_file(tconfig);
  m->transformer = std::make_unique<WanTransformer>(m->config, tw);
  if (!is_folder(tpath)) refuse_unknown_tensors(tw, tpath, "Wan");
  // ---- UMT5 text encoder and tokenizer ----
  const std::string te = find_component(first_given(opts.text_encoder, opts.t5), opts.config_dir, "text_encoder", path,
                                        {"umt5", "models_t5_umt5"});
  if (te.empty())
    fail(ErrorCode::kMissingComponent, "this Wan transformer comes without its UMT5 text encoder; pass --text-encoder "
                                       "FILE (ComfyUI's umt5_xxl_fp16.safetensors or a UMT5 GGUF) and --tokenizer DIR "
                                       "(google/umt5-xxl's tokenizer), put them beside the model, or pass --config "
                                       "with a diffusers Wan folder");
  m->text_encoder = load_t5_component({te, "", sub("text_encoder")}, bf16, "text_encoder");
  m->text_encoder->set_keep_weights(opts.keep_text_encoder);  // else one block's compute copy at a time (UMT5-XXL: ~1.5 GiB, not 13)
  if (!m->text_encoder->config().per_layer_bias)
    fail(ErrorCode::kShapeMismatch, "the text encoder '" + te + "' is a T5 model (one shared position bias); Wan "
                                    "encodes prompts with UMT5-XXL, pass that with --text-encoder");
  if (m->text_encoder->config().d_model != m->config.text_dim)
    fail(ErrorCode::kShapeMismatch, "the text encoder is " + std::to_string(m->text_encoder->config().d_model) +
                                    " wide but this Wan transformer takes " + std::to_string(m->config.text_dim) +
                                    "-wide text states; pass the UMT5 encoder it was trained with (UMT5-XXL: 4096)");
  const std::string te_parent = fs::path(te).parent_path().string();
  m->tokenizer = load_t5_tokenizer({sub("tokenizer"), opts.tokenizer_dir, te_parent + "/tokenizer", te_parent}, "Wan");
  // ---- VAE, scheduler, info ----
  const std::string vae = find_component(opts.vae_file, opts.config_dir, "vae", path, {"wan2.2_vae", "wan_2.2_vae", "wan2_2_vae"});
  if (vae.empty())
    fail(ErrorCode::kMissingComponent, "no VAE for this Wan model; pass --vae wan2.2_vae.safetensors (the Wan 2.2 VAE) "
                                       "or a diffusers vae folder");
  m->vae = load_wan_vae_component({vae, "", sub("vae")}, bf16);
  if (m->vae->config().z_dim != m->config.in_channels)
    fail(ErrorCode::kShapeMismatch, "the VAE has " + std::to_string(m->vae->config().z_dim) +
                                    " latent channels but this Wan transformer takes " +
                                    std::to_string(m->config.in_channels) + "; pass the Wan 2.2 VAE (48 channels)");
  const std::string sched = sub("scheduler") + "/scheduler_config.json";
  m->scheduler = !base.empty() && path_exists(sched) ? SchedulerConfig::from_json_file(sched) : default_scheduler();
  ModelInfo& info = m->info;
  info.family = "wan";
  info.path = path;
  info.name = fs::path(path).filename().string();
  if (info.name.empty()) info.name = fs::path(path).parent_path().filename().string();
  info.prediction_type = "flow_prediction";
  info.vae_scale = static_cast<int>(m->vae->config().spatial_scale());
  info.size_multiple = info.vae_scale * static_cast<int>(m->config.patch_size[1]);
  info.default_width = 1280;  // TI2V-5B's 720p: 1280x704
  info.default_height = 704;
  info.video = true;
  info.default_frames = 121;  // 5 s at 24 fps, as the model card generates
  m->hash_source = folder ? weight_files(path + "/transformer").front() : tpath;
  return m;
}

}  // namespace vg
