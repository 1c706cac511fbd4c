#include "pipelines/flux_model.h"

#include <filesystem>

#include "core/error.h"
#include "io/atomic_file.h"
#include "models/config_util.h"
#include "io/hf_cache.h"
#include "io/tensor_file.h"
#include "models/flux_names.h"
#include "pipelines/family_engine.h"

namespace vg {

namespace fs = std::filesystem;

namespace {

// The published FLUX.1 scheduler configs (dev: dynamic shift; schnell: none).
SchedulerConfig default_scheduler(bool dev) {
  nlohmann::json j = {{"_class_name", "FlowMatchEulerDiscreteScheduler"}, {"num_train_timesteps", 1000}};
  if (dev) {
    j.update({{"shift", 3.0}, {"use_dynamic_shifting", true}, {"base_shift", 0.5}, {"max_shift", 1.15},
              {"base_image_seq_len", 256}, {"max_image_seq_len", 4096}});
  } else {
    j.update({{"shift", 1.0}, {"use_dynamic_shifting", false}});
  }
  return SchedulerConfig::from_json(j, "the FLUX.1 default scheduler");
}

}  // namespace

std::unique_ptr<FluxModel> load_flux_model(const std::string& path, const LoadOptions& opts, bool bf16) {
  auto m = std::make_unique<FluxModel>();
  const bool folder = is_folder(path);
  const std::string cfg_dir = opts.config_dir;
  const std::string base = folder ? path : cfg_dir;  // where components and configs come from
  // ---- transformer ----
  const std::string tpath = !opts.transformer_file.empty() ? opts.transformer_file : folder ? path + "/transformer" : path;
  const std::string tconfig = first_config({tpath, base.empty() ? std::string() : base + "/transformer"});
  WeightStore tw;
  if (is_folder(tpath)) {
    tw = flux_weights_from_diffusers(open_component_weights(tpath, "transformer"));
  } else {
    if (!path_exists(tpath)) fail(ErrorCode::kFileNotFound, "transformer file '" + tpath + "' does not exist");
    auto f = open_tensor_file(tpath);
    if (!is_flux_bfl(*f))
      fail(ErrorCode::kUnsupportedModel, "'" + tpath + "' holds no FLUX transformer (no double_blocks.*); pass "
                                         "flux1-dev/schnell.safetensors, a city96 FLUX GGUF or a diffusers FLUX folder");
    tw = flux_bfl_weights(f);
  }
  tw.set_compute_bf16(bf16);
  m->config = tconfig.empty() ? FluxConfig::from_weights(tw) : FluxConfig::from_json_file(tconfig);
  m->transformer = std::make_unique<FluxTransformer>(m->config, tw);
  const bool dev = m->config.guidance_embeds;
  // ---- text encoders and tokenizers ----
  const std::string clip = find_component(first_given(opts.text_encoder, opts.clip_l), cfg_dir, "text_encoder", path, {"clip_l"});
  const std::string t5 = find_component(first_given(opts.text_encoder_2, opts.t5), cfg_dir, "text_encoder_2", path, {"t5xxl", "t5"});
  if (clip.empty() || t5.empty())
    fail(ErrorCode::kMissingComponent,
         std::string("this FLUX transformer comes without its ") + (clip.empty() ? "CLIP-L" : "") +
             (clip.empty() && t5.empty() ? " and " : "") + (t5.empty() ? "T5" : "") +
             " text encoder; pass --clip-l FILE and --t5 FILE (ComfyUI's clip_l.safetensors / t5xxl_fp16.safetensors), "
             "put them beside the model, or pass --config with a diffusers FLUX folder");
  auto sub = [&](const char* s) { return base.empty() ? std::string() : base + "/" + s; };
  m->clip = load_clip_component({clip, "", sub("text_encoder")}, bf16, "text_encoder");
  m->t5 = load_t5_component({t5, "", sub("text_encoder_2")}, bf16, "text_encoder_2");
  m->t5->set_keep_weights(opts.keep_text_encoder);  // else one block's compute copy at a time (T5-XXL: ~1.5 GiB, not 18)
  if (m->t5->config().d_model != m->config.joint_attention_dim)
    fail(ErrorCode::kShapeMismatch, "the T5 encoder is " + std::to_string(m->t5->config().d_model) +
                                        " wide but this FLUX transformer takes " +
                                        std::to_string(m->config.joint_attention_dim) +
                                        "-wide text states; pass the T5-XXL encoder FLUX was trained with");
  if (m->clip->config().hidden_size != m->config.pooled_projection_dim)
    fail(ErrorCode::kShapeMismatch, "the CLIP text encoder is " + std::to_string(m->clip->config().hidden_size) +
                                        " wide but this FLUX transformer takes a " +
                                        std::to_string(m->config.pooled_projection_dim) + "-wide pooled vector; pass CLIP-L");
  // CLIP: the folder's tokenizer, else --tokenizer when it is a CLIP one, else the built-in vocabulary
  const bool clip_tok_given = path_exists(opts.tokenizer_dir + "/vocab.json");
  m->clip_tokenizer = load_clip_tokenizer(path_exists(sub("tokenizer")) ? sub("tokenizer") : clip_tok_given ? opts.tokenizer_dir : "",
                                          "<|endoftext|>");
  const std::string t5_parent = fs::path(t5).parent_path().string();
  m->t5_tokenizer = load_t5_tokenizer({sub("tokenizer_2"), opts.tokenizer_dir, t5_parent + "/tokenizer_2", t5_parent}, "FLUX");
  // ---- VAE, scheduler, info ----
  const std::string vae = find_component(opts.vae_file, cfg_dir, "vae", path, {"ae.", "ae-", "ae_", "flux_vae", "vae"});
  if (vae.empty())
    fail(ErrorCode::kMissingComponent, "no VAE for this FLUX model; pass --vae ae.safetensors (BFL's) or a diffusers vae folder");
  m->parts.vae = kl_latent_codec(load_vae_component({vae, "", sub("vae")}, bf16, dit_vae_defaults(0.3611f, 0.1159f)  /* BFL's ae.safetensors */));
  const std::string sched = sub("scheduler") + "/scheduler_config.json";
  m->parts.scheduler = !base.empty() && path_exists(sched) ? SchedulerConfig::from_json_file(sched) : default_scheduler(dev);
  m->parts.info = dit_model_info("flux", path, *m->parts.vae, 2 /* 2x2 latent packing */, 1024);
  m->parts.hash_source = folder ? weight_files(path + "/transformer").front() : path;
  return m;
}

}  // namespace vg
