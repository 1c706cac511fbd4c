#include "pipelines/sd3_model.h"

#include <filesystem>

#include "core/error.h"
#include "io/atomic_file.h"
#include "models/config_util.h"
#include "io/tensor_file.h"
#include "models/mmdit_names.h"
#include "pipelines/family_engine.h"

namespace vg {

namespace fs = std::filesystem;

namespace {

// SD3.5's published scheduler config.
SchedulerConfig default_scheduler() {
  return SchedulerConfig::from_json({{"_class_name", "FlowMatchEulerDiscreteScheduler"}, {"num_train_timesteps", 1000}, {"shift", 3.0}},
                                    "the SD3 default scheduler");
}
}  // namespace

std::unique_ptr<Sd3Model> load_sd3_model(const std::string& path, const LoadOptions& opts, bool bf16) {
  auto m = std::make_unique<Sd3Model>();
  const bool folder = is_folder(path);
  const std::string base = folder ? path : opts.config_dir;
  auto sub = [&](const char* s) { return base.empty() ? std::string() : base + "/" + s; };
  // ---- transformer ----
  const std::string tpath = !opts.transformer_file.empty() ? opts.transformer_file : folder ? path + "/transformer" : path;
  const std::string tconfig = first_config({tpath, sub("transformer")});
  WeightStore tw;
  std::shared_ptr<TensorFile> single;  // the single file, when -m is one (its VAE and encoders may be inside)
  if (is_folder(tpath)) {
    tw = open_mmdit_weights(tpath);
  } else {
    if (!path_exists(tpath)) fail(ErrorCode::kFileNotFound, "transformer file '" + tpath + "' does not exist");
    auto f = open_tensor_file(tpath);
    if (!is_mmdit_file(*f))
      fail(ErrorCode::kUnsupportedModel, "'" + tpath + "' holds no SD3 transformer (no joint_blocks.*); pass "
                                         "sd3.5_medium/large.safetensors, a city96 SD3.5 GGUF or a diffusers SD3 folder");
    tw = mmdit_file_weights(f);
    if (tpath == path) single = f;
  }
  tw.set_compute_bf16(bf16);
  m->config = tconfig.empty() ? MmditConfig::from_weights(tw) : MmditConfig::from_json_file(tconfig);
  m->transformer = std::make_unique<MmditTransformer>(m->config, tw);
  // ---- text encoders: given, in the folder, inside the single file, or beside it ----
  auto inside = [&](const std::string& prefix) -> ComponentRef {
    if (single && single->has(prefix + "text_model.embeddings.token_embedding.weight")) return {path, prefix, ""};
    if (single && single->has(prefix + "shared.weight")) return {path, prefix, ""};
    return {};
  };
  // given > the folder's > inside the single file > beside it > the --config folder's
  auto pick = [&](const std::string& given, const char* slot, const std::string& prefix,
                  std::initializer_list<const char*> patterns) -> ComponentRef {
    if (given.empty() && !folder) {
      ComponentRef r = inside(prefix);
      if (!r.empty()) return {r.path, r.prefix, sub(slot)};
    }
    return {find_component(given, opts.config_dir, slot, path, patterns), "", sub(slot)};
  };
  const ComponentRef cl = pick(first_given(opts.text_encoder, opts.clip_l), "text_encoder", "text_encoders.clip_l.transformer.", {"clip_l"});
  const ComponentRef cg = pick(first_given(opts.text_encoder_2, opts.clip_g), "text_encoder_2", "text_encoders.clip_g.transformer.", {"clip_g"});
  if (cl.empty() || cg.empty())
    fail(ErrorCode::kMissingComponent, "this SD3 model comes without its CLIP text encoders; pass --clip-l FILE and "
                                       "--clip-g FILE (ComfyUI's clip_l.safetensors / clip_g.safetensors), put them beside "
                                       "the model, or pass --config with a diffusers SD3 folder");
  m->clip_l = load_clip_component(cl, bf16, "text_encoder");
  m->clip_g = load_clip_component(cg, bf16, "text_encoder_2");
  if (!opts.no_t5) {
    const ComponentRef t5 = pick(first_given(opts.text_encoder_3, opts.t5), "text_encoder_3", "text_encoders.t5xxl.transformer.", {"t5xxl", "t5"});
    if (!t5.empty()) {
      m->t5 = load_t5_component(t5, bf16, "text_encoder_3");
      m->t5->set_keep_weights(opts.keep_text_encoder);  // else one block's compute copy at a time (T5-XXL: ~1.5 GiB, not 18)
      if (m->t5->config().d_model != m->config.joint_attention_dim)
        fail(ErrorCode::kShapeMismatch, "the T5 encoder is " + std::to_string(m->t5->config().d_model) +
                                            " wide but this SD3 transformer takes " +
                                            std::to_string(m->config.joint_attention_dim) +
                                            "-wide text states; pass the T5-XXL encoder or --no-t5");
      const std::string t5_parent = fs::path(t5.path).parent_path().string();
      m->t5_tokenizer = load_t5_tokenizer({sub("tokenizer_3"), opts.tokenizer_dir, t5_parent + "/tokenizer_3", t5_parent}, "SD3");
    }
  }
  const int64_t clip_width = m->clip_l->config().hidden_size + m->clip_g->config().hidden_size;
  if (clip_width > m->config.joint_attention_dim)
    fail(ErrorCode::kShapeMismatch, "the CLIP encoders are " + std::to_string(clip_width) + " wide together, more than this "
                                    "SD3 transformer's " + std::to_string(m->config.joint_attention_dim) + "-wide text states");
  const bool clip_tok_given = path_exists(opts.tokenizer_dir + "/vocab.json");
  m->clip_l_tokenizer = load_clip_tokenizer(path_exists(sub("tokenizer")) ? sub("tokenizer") : clip_tok_given ? opts.tokenizer_dir : "", "<|endoftext|>");
  m->clip_g_tokenizer = load_clip_tokenizer(path_exists(sub("tokenizer_2")) ? sub("tokenizer_2") : clip_tok_given ? opts.tokenizer_dir : "", "!");
  if (m->clip_g_tokenizer->pad_id() == m->clip_g_tokenizer->eos_id()) m->clip_g_tokenizer->set_pad_token("!");
  // ---- VAE, scheduler, info ----
  ComponentRef vae{"", "", sub("vae")};
  if (opts.vae_file.empty() && single && single->has("first_stage_model.decoder.conv_in.weight")) vae.path = path, vae.prefix = "first_stage_model.";
  else vae.path = find_component(opts.vae_file, opts.config_dir, "vae", path, {"vae", "sd3_vae", "sd35_vae"});
  if (vae.empty()) fail(ErrorCode::kMissingComponent, "no VAE for this SD3 model; pass --vae FILE or a diffusers vae folder");
  m->parts.vae = kl_latent_codec(load_vae_component(vae, bf16, dit_vae_defaults(1.5305f, 0.0609f)  /* SD3's */));
  const std::string sched = sub("scheduler") + "/scheduler_config.json";
  m->parts.scheduler = !base.empty() && path_exists(sched) ? SchedulerConfig::from_json_file(sched) : default_scheduler();
  m->parts.info = dit_model_info("sd3", path, *m->parts.vae, m->config.patch_size,
                                 static_cast<int>(m->config.sample_size * m->parts.vae->scale()));
  m->parts.hash_source = folder ? weight_files(path + "/transformer").front() : path;
  return m;
}

}  // namespace vg
