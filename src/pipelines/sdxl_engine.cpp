// The Stable Diffusion XL engine: diffusers' StableDiffusionXL{,Img2Img,
// Inpaint}Pipeline conditioning (two CLIP text encoders, pooled embeds and
// size/crop/aesthetic time ids) on the shared SD sampling, img2img and
// inpainting code, plus the base -> refiner hand-off (denoising_end/start).
#include <algorithm>
#include <cmath>

#include "backend/cpu/ops.h"
#include "core/error.h"
#include "io/atomic_file.h"
#include "io/hf_cache.h"
#include "pipelines/sd_engine.h"

namespace vg {

namespace {

// (height, width) of a "WxH" field, else the fallback.
std::pair<float, float> hw(const std::string& s, int w, int h) {
  std::pair<int, int> v;
  if (!parse_pair(s, 'x', &v)) return {static_cast<float>(h), static_cast<float>(w)};
  return {static_cast<float>(v.second), static_cast<float>(v.first)};
}
// (top, left) of an "X,Y" field, else (0, 0).
std::pair<float, float> top_left(const std::string& s) {
  std::pair<int, int> v;
  if (!parse_pair(s, ',', &v)) return {0.0f, 0.0f};
  return {static_cast<float>(v.second), static_cast<float>(v.first)};
}

Tensor rows(const std::vector<std::vector<float>>& r) {
  Tensor t({static_cast<int64_t>(r.size()), static_cast<int64_t>(r[0].size())});
  for (size_t i = 0; i < r.size(); ++i) std::copy(r[i].begin(), r[i].end(), t.data() + i * r[0].size());
  return t;
}

// Calls of `s` at or after diffusers' discrete timestep cutoff for `fraction`.
int cutoff_timestep(const SdModel& m, double fraction) {
  const int n = m.scheduler.num_train_timesteps;
  return static_cast<int>(std::lround(n - fraction * n));
}

}  // namespace

class SdxlEngine : public SdEngine {
 public:
  SdxlEngine(std::unique_ptr<SdModel> model, const LoadOptions& opts) : SdEngine(std::move(model), opts), opts_(opts) {}
  std::string preset_family() const override { return "sdxl"; }

 protected:
  PromptConditioning encode_prompts(const GenerateParams& p, int width, int height) override;
  Status validate_family(const GenerateParams& p, int width, int height) const override;
  size_t base_end_call(const GenerateParams& p, const Sampler& s) const override;
  Tensor refine(const GenerateParams& p, Tensor latents, int width, int height, Rng& rng,
                const ProgressCallback& cb) override;

 private:
  // One encoder's hidden states at diffusers' hidden_states[-(clip_skip + 2)].
  Tensor encode_one(const GenerateParams& p, const ClipTextModel& te, const ClipTokenizer& tok, const std::string& text,
                    int clip_skip, Tensor* pooled) {
    const int64_t layers = te.config().num_layers - 1 - (clip_skip - 1);
    return encode_syntax(p, te, tok, text, layers, false, pooled);
  }
  Tensor time_ids(const GenerateParams& p, int w, int h, bool negative) const;
  SdxlEngine& refiner_engine(const std::string& path);

  LoadOptions opts_;
  std::string refiner_path_;
  std::unique_ptr<SdxlEngine> refiner_;
};

Tensor SdxlEngine::time_ids(const GenerateParams& p, int w, int h, bool negative) const {
  const bool edit = !p.init_image.empty();
  auto orig = hw(p.original_size, w, h), target = hw(p.target_size, w, h);
  auto crop = top_left(p.crop_coords);
  if (negative) {
    const bool own = !p.negative_original_size.empty() && !p.negative_target_size.empty();
    if (model_->requires_aesthetics_score || edit) {
      // img2img/inpaint/refiner pipelines: negative sizes default to the positive ones
      if (!p.negative_original_size.empty()) orig = hw(p.negative_original_size, w, h);
      if (!p.negative_target_size.empty()) target = hw(p.negative_target_size, w, h);
      if (model_->requires_aesthetics_score) crop = top_left(p.negative_crop_coords);
    } else if (own) {  // text-to-image: both negative sizes, or the positive ids
      orig = hw(p.negative_original_size, w, h);
      target = hw(p.negative_target_size, w, h);
      crop = top_left(p.negative_crop_coords);
    }
  }
  std::vector<float> ids = {orig.first, orig.second, crop.first, crop.second};
  if (model_->requires_aesthetics_score) ids.push_back(negative ? p.negative_aesthetic_score : p.aesthetic_score);
  else ids.insert(ids.end(), {target.first, target.second});
  return rows({ids});
}

PromptConditioning SdxlEngine::encode_prompts(const GenerateParams& p, int w, int h) {
  SdModel& m = *model_;
  const bool cfg = p.cfg_scale > 1.0f;
  // diffusers' encode_prompt applies clip_skip to the prompt; the negative
  // prompt always uses hidden_states[-2].
  auto encode = [&](const std::string& text, const std::string& text_2, Tensor* pooled, int clip_skip) {
    Tensor h2 = encode_one(p, *m.text_encoder_2, *m.tokenizer_2, text_2, clip_skip, pooled);
    if (!m.text_encoder) return h2;
    return concat_channels(encode_one(p, *m.text_encoder, *m.tokenizer, text, clip_skip, nullptr), h2);
  };
  PromptConditioning c;
  Tensor pooled, neg_pooled;
  c.cond = encode(p.prompt, p.prompt_2.empty() ? p.prompt : p.prompt_2, &pooled, p.clip_skip);
  const Tensor ids = time_ids(p, w, h, false);
  if (!cfg) {
    c.added = {pooled, ids};
    return c;
  }
  // diffusers: a missing negative prompt is all zeros when the model says so;
  // an explicitly given "" is encoded.
  const bool given = std::find(p.set_fields.begin(), p.set_fields.end(), "negative_prompt") != p.set_fields.end();
  if (m.force_zeros_for_empty_prompt && p.negative_prompt.empty() && !given) {
    c.uncond = Tensor::zeros(c.cond.shape());
    neg_pooled = Tensor::zeros(pooled.shape());
  } else {
    c.uncond = encode(p.negative_prompt, p.negative_prompt_2.empty() ? p.negative_prompt : p.negative_prompt_2, &neg_pooled, 1);
  }
  pad_to_same_length(p, c, [&] {
    Tensor unused;
    return encode("", "", &unused, 1);
  });
  c.added = {concat_batch(neg_pooled, pooled), concat_batch(time_ids(p, w, h, true), ids)};
  return c;
}

Status SdxlEngine::validate_family(const GenerateParams& p, int, int) const {
  if (!p.refiner.empty() && !path_exists(p.refiner) && p.refiner.find('/') != std::string::npos)
    return Error{ErrorCode::kFileNotFound, "refiner '" + p.refiner + "' does not exist; pass an SDXL refiner folder or file"};
  return Status();
}

size_t SdxlEngine::base_end_call(const GenerateParams& p, const Sampler& s) const {
  if (p.refiner.empty()) return 0;
  const int cut = cutoff_timestep(*model_, p.refiner_switch);
  size_t n = 0;
  for (float t : s.timesteps()) n += t >= static_cast<float>(cut);
  return std::max<size_t>(n, 1);
}

SdxlEngine& SdxlEngine::refiner_engine(const std::string& path) {
  if (refiner_ && refiner_path_ == path) return *refiner_;
  auto m = load_sd_model(resolve_model_reference(path), opts_.tokenizer_dir, model_->info.precision == "bf16");
  m->info.precision = model_->info.precision;
  if (m->info.family != "sdxl" || !m->requires_aesthetics_score)
    fail(ErrorCode::kInvalidArgument, "'" + path + "' is not an SDXL refiner (it is a " + m->info.family +
                                          (m->info.family == "sdxl" ? " base model" : " model") +
                                          "); pass a refiner such as stabilityai/stable-diffusion-xl-refiner-1.0");
  if (m->vae->config().latent_channels != model_->vae->config().latent_channels)
    fail(ErrorCode::kInvalidArgument, "the refiner's latent space does not match this model's");
  refiner_ = std::make_unique<SdxlEngine>(std::move(m), opts_);
  refiner_path_ = path;
  return *refiner_;
}

Tensor SdxlEngine::refine(const GenerateParams& p, Tensor latents, int w, int h, Rng& rng, const ProgressCallback& cb) {
  SdxlEngine& r = refiner_engine(p.refiner);
  const PromptConditioning c = r.encode_prompts(p, w, h);
  r.release_text_encoders();
  auto s = r.make_request_sampler(p, r.model().scheduler, nullptr);
  // diffusers' denoising_start: the calls below the cutoff (an odd count for 2nd-order samplers)
  const int cut = cutoff_timestep(r.model(), p.refiner_switch);
  size_t n = 0;
  for (float t : s->timesteps()) n += t < static_cast<float>(cut);
  if (s->order() == 2 && n % 2 == 0) ++n;
  n = std::min(n, s->timesteps().size());
  if (n == 0) return latents;
  DenoiseHooks hooks;
  hooks.added = &c.added;
  if (trace_) hooks.step_latents = &trace_->step_latents;
  hooks.on_step = [&](int i, int total, const Tensor&) { return !cb || cb(Progress{"refine", i, total, 0.0}); };
  return denoise(*r.model().unet, *s, c.cond, c.uncond, std::move(latents), p.cfg_scale, rng, hooks,
                 s->timesteps().size() - n);
}

std::unique_ptr<FamilyEngine> make_sdxl_engine(std::unique_ptr<SdModel> model, const LoadOptions& opts) {
  return std::make_unique<SdxlEngine>(std::move(model), opts);
}

}  // namespace vg
