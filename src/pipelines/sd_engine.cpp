#include "pipelines/sd_engine.h"

#include <algorithm>
#include <chrono>
#include <random>

#include "backend/cpu/ops.h"
#include "core/error.h"
#include "core/memory.h"
#include "io/image_decode.h"
#include "io/image_io.h"
#include "pipelines/image_prep.h"
#include "pipelines/img2img.h"
#include "text/prompt_syntax.h"

namespace vg {

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Width/height with 0 meaning the model's native size.
std::pair<int, int> resolved_size(const SdModel& m, const GenerateParams& p) {
  return {p.width ? p.width : m.info.default_width, p.height ? p.height : m.info.default_height};
}

bool report_step(const ProgressCallback& cb, const GenerateParams& p, const SdModel& m, const VaeChoice& vae, int i, int n,
                 const Tensor& lat, double elapsed) {
  if (!cb) return true;
  Progress pr{"denoise", i, n, elapsed};
  Image preview;
  if (p.preview_every > 0 && p.preview != "none" && (i % p.preview_every == 0 || i == n)) {
    preview = vae.preview(lat, m);
    pr.preview = &preview;
  }
  return cb(pr);
}

// Token-axis concatenation of [1,T,C] tensors.
Tensor concat_tokens(const std::vector<Tensor>& parts) {
  int64_t t = 0;
  for (const auto& x : parts) t += x.dim(1);
  const int64_t c = parts[0].dim(2);
  Tensor out({1, t, c});
  int64_t at = 0;
  for (const auto& x : parts) {
    std::copy_n(x.data(), x.numel(), out.data() + at * c);
    at += x.dim(1);
  }
  return out;
}

}  // namespace

SdEngine::SdEngine(std::unique_ptr<SdModel> model, const LoadOptions& opts)
    : model_(std::move(model)), keep_text_encoder_(opts.keep_text_encoder) {
  std::vector<LoraComponent> parts{{"unet", model_->unet_layers, model_->unet_sgm_name}};
  if (model_->text_encoder) parts.push_back({"text_encoder", model_->text_encoder_layers, nullptr});
  if (model_->text_encoder_2) parts.push_back({"text_encoder_2", model_->text_encoder_2_layers, nullptr});
  loras_ = std::make_unique<LoraManager>(model_->info.family, std::move(parts));
  loras_->set_dirs(opts.lora_dirs, opts.lora_confined);
  loras_->set_runtime(opts.lora_mode == "runtime");
}

const ModelInfo& SdEngine::info() const { return model_->info; }

std::string SdEngine::preset_family() const {
  return model_->info.family == "sd2" ? "stable-diffusion-2-x" : "stable-diffusion-1-x";
}

SamplerOptions SdEngine::sampler_options(const GenerateParams& p) const {
  SamplerOptions o;
  if (p.eta >= 0) o.eta = p.eta;
  o.s_noise = p.s_noise;
  o.s_churn = p.s_churn;
  return o;
}

std::unique_ptr<Sampler> SdEngine::make_request_sampler(const GenerateParams& p, const SchedulerConfig& sc,
                                                        SamplerChoice* choice) const {
  const SamplerOptions sopt = sampler_options(p);
  SamplerChoice c = resolve_sampler(p.sampler, p.scheduler, sc, sopt);
  auto s = make_sampler(c, sc, sopt);
  s->set_timesteps(p.steps);
  if (choice) *choice = c;
  return s;
}

Status SdEngine::validate(const GenerateParams& p, const ImageInputs& images) const {
  const SdModel& m = *model_;
  auto sized = guard([&] {
    const RequestImages l(p, images);
    if (l.pi && !m.vae->has_encoder())
      fail(ErrorCode::kMissingComponent, "this model's VAE has no encoder weights; image-to-image needs a full VAE");
    return l.pi ? edit_size(p, *l.pi, m.info.size_multiple) : resolved_size(m, p);
  });
  if (!sized) return sized.error();
  const auto [w, h] = *sized;
  auto r = guard([&] {
    make_rng(p.rng, 0);
    // Building the schedule catches step counts a sampler cannot do (LCM > 50).
    make_request_sampler(p, m.scheduler, nullptr);
    return 0;
  });
  if (!r) return r.error();
  Status s = check_model_params(m, p, w, h);
  if (!s) return s;
  return validate_family(p, w, h);
}

Tensor SdEngine::encode_text(const ClipTextModel& enc, const ClipTokenizer& tok, const std::string& text,
                             int64_t layers, bool final_norm, Tensor* pooled) {
  const std::vector<int32_t> ids = tok.encode_padded(text);
  std::string key = loras_->signature() + "|" + std::to_string(reinterpret_cast<uintptr_t>(&enc)) + "/" + std::to_string(layers) +
                    (final_norm ? "n" : "") + (pooled ? "p" : "") + ":";
  for (int32_t id : ids) key += std::to_string(id) + ",";
  for (auto it = embeddings_.begin(); it != embeddings_.end(); ++it)
    if (it->first == key) {
      embeddings_.splice(embeddings_.begin(), embeddings_, it);
      if (pooled) *pooled = it->second.pooled.clone();
      return it->second.hidden.clone();  // callers may work in place
    }
  CachedText e;
  if (final_norm) {
    e.hidden = enc.encode({ids}, static_cast<int>(enc.config().num_layers - layers + 1));
  } else {
    e.hidden = enc.hidden_and_pooled({ids}, layers, pooled ? &e.pooled : nullptr);
  }
  CachedText kept;  // long-lived: outside the step pool
  kept.hidden = Tensor::unpooled(e.hidden.shape());
  std::copy_n(e.hidden.data(), e.hidden.numel(), kept.hidden.data());
  if (pooled) {
    kept.pooled = Tensor::unpooled(e.pooled.shape());
    std::copy_n(e.pooled.data(), e.pooled.numel(), kept.pooled.data());
    *pooled = e.pooled;
  }
  embeddings_.emplace_front(std::move(key), std::move(kept));
  if (embeddings_.size() > 16) embeddings_.pop_back();
  return e.hidden;
}

Tensor SdEngine::encode_syntax(const GenerateParams& p, const ClipTextModel& enc, const ClipTokenizer& tok,
                               const std::string& text, int64_t layers, bool final_norm, Tensor* pooled) {
  if (p.prompt_syntax != "a1111") return encode_text(enc, tok, text, layers, final_norm, pooled);
  std::vector<Tensor> parts;
  for (const PromptChunk& ch : a1111_chunks(tok, text)) {
    const int64_t c = enc.config().hidden_size;
    Tensor pc;
    Tensor z = final_norm ? enc.encode({ch.ids}, static_cast<int>(enc.config().num_layers - layers + 1))
                          : enc.hidden_and_pooled({ch.ids}, layers, pooled && parts.empty() ? &pc : nullptr);
    if (pooled && parts.empty() && !final_norm) *pooled = pc;
    apply_emphasis(z, ch.weights);
    parts.push_back(z.reshape({1, z.numel() / c, c}));
  }
  return concat_tokens(parts);
}

void SdEngine::pad_to_same_length(const GenerateParams& p, PromptConditioning& c, const std::function<Tensor()>& empty) {
  if (p.prompt_syntax != "a1111" || c.uncond.empty() || c.cond.dim(1) == c.uncond.dim(1)) return;
  Tensor& shorter = c.cond.dim(1) < c.uncond.dim(1) ? c.cond : c.uncond;
  const int64_t target = std::max(c.cond.dim(1), c.uncond.dim(1));
  const Tensor pad = empty();
  std::vector<Tensor> parts{shorter};
  for (int64_t t = shorter.dim(1); t < target; t += pad.dim(1)) parts.push_back(pad);
  shorter = concat_tokens(parts);
}

void SdEngine::release_text_encoders() {
  if (keep_text_encoder_) return;
  if (model_->text_encoder) model_->text_encoder->release_weights();
  if (model_->text_encoder_2) model_->text_encoder_2->release_weights();
}

PromptConditioning SdEngine::encode_prompts(const GenerateParams& p, int, int) {
  // diffusers applies clip_skip to the prompt only.
  const ClipTextModel& te = *model_->text_encoder;
  const int64_t n = te.config().num_layers;
  PromptConditioning c;
  c.cond = encode_syntax(p, te, *model_->tokenizer, p.prompt, n - (p.clip_skip - 1), true, nullptr);
  if (p.cfg_scale > 1.0f) c.uncond = encode_syntax(p, te, *model_->tokenizer, p.negative_prompt, n, true, nullptr);
  pad_to_same_length(p, c, [&] { return encode_syntax(p, te, *model_->tokenizer, "", n, true, nullptr); });
  return c;
}

GenerateResult SdEngine::generate(const GenerateParams& p, const ImageInputs& images, const ProgressCallback& cb) {
  SdModel& m = *model_;
  GenerateResult res;
  const RequestImages li(p, images);
  const auto [w, h] = li.pi ? edit_size(p, *li.pi, m.info.size_multiple) : resolved_size(m, p);
  vae_.prepare(m, p);
  VaeSwap swap(m.vae, vae_.kl_override());  // --vae with a full VAE: encode and decode with it
  const int vscale = vae_.scale(m);
  if (w % vscale || h % vscale)
    fail(ErrorCode::kInvalidArgument, "the VAE works in multiples of " + std::to_string(vscale) + " pixels; got " +
                                          std::to_string(w) + "x" + std::to_string(h));
  const AutoencoderTiny* tiny = vae_.tiny();
  if (tiny && li.pi && vscale != m.info.vae_scale)
    fail(ErrorCode::kInvalidArgument, "this TAESD's scale differs from the model's VAE, which encodes the init image; use a matching TAESD");
  auto decode_tiny = [tiny](const Tensor& lat) {  // TAESD decodes UNet-space latents / its scaling factor (1)
    Tensor z = lat.clone();
    scale_inplace(z, 1.0f / tiny->scaling_factor());
    return tiny->decode(z);
  };
  const uint64_t seed = p.seed >= 0 ? static_cast<uint64_t>(p.seed) : (std::random_device{}() & 0xffffffffu);
  auto report = [&](const char* stage, int step, int total, Clock::time_point t0) {
    if (cb && !cb(Progress{stage, step, total, seconds_since(t0)})) fail(ErrorCode::kCancelled, "generation was cancelled");
  };
  auto t0 = Clock::now();
  reset_peak_rss();
  report("text_encode", 0, 1, t0);
  // LoRAs: --lora plus the prompt's <lora:name:w> tags (removed from the text
  // encoded, kept in the infotext as A1111 does).
  std::vector<LoraSpec> lora_specs = parse_lora_list(p.loras);
  GenerateParams pe = p;
  pe.prompt = extract_prompt_loras(p.prompt, &lora_specs);
  if (!p.prompt_2.empty()) {  // tags there count too (once: a name already listed keeps its weight)
    std::vector<LoraSpec> second;
    pe.prompt_2 = extract_prompt_loras(p.prompt_2, &second);
    for (const LoraSpec& s2 : second)
      if (std::none_of(lora_specs.begin(), lora_specs.end(), [&](const LoraSpec& x) { return x.name == s2.name; }))
        lora_specs.push_back(s2);
  }
  const LoraApplied lora = loras_->set(lora_specs);
  res.warnings.insert(res.warnings.end(), lora.warnings.begin(), lora.warnings.end());
  auto infotext = [&](uint64_t s, int iw, int ih) {
    std::string lora_info;  // hashed while the image was made
    for (const auto& [name, file] : lora.hashes) lora_info += (lora_info.empty() ? "" : ", ") + name + ": " + file->hash();
    std::string t = format_infotext(p, s, iw, ih, m.info.name, hash_);
    const auto at = t.rfind(", Version: ");
    if (!lora_info.empty() && at != std::string::npos) t.insert(at, ", Lora hashes: \"" + lora_info + "\"");
    return t;
  };
  const PromptConditioning cond = encode_prompts(pe, w, h);
  release_text_encoders();  // after both prompts, not per prompt
  if (trace_) {
    trace_->context = cond.uncond.empty() ? cond.cond : concat_batch(cond.uncond, cond.cond);
    trace_->text_embeds = cond.added.text_embeds;
    trace_->time_ids = cond.added.time_ids;
  }
  res.timings.text_encode_s = seconds_since(t0);
  res.timings.text_encode_peak_rss_mb = peak_rss_bytes() / 1048576.0;
  reset_peak_rss();
  report("text_encode", 1, 1, t0);
  const int64_t lh = h / vscale, lw = w / vscale;
  const int64_t lc = m.vae->config().latent_channels;
  if (!hashed_) {
    hash_ = model_hash(m.hash_source);
    hashed_ = true;
  }
  SamplerChoice choice;
  make_request_sampler(p, m.scheduler, &choice);
  res.warnings.insert(res.warnings.end(), choice.warnings.begin(), choice.warnings.end());
  res.sampling = {p.sampler, choice.sampler, p.scheduler, choice.schedule, canonical_rng_name(p.rng)};
  for (int b = 0; b < p.batch_size; ++b) {
    const uint64_t s = seed + static_cast<uint64_t>(b);
    auto sampler = make_request_sampler(p, m.scheduler, nullptr);
    res.sampling.scheduler_effective = sampler->schedule();
    auto rng_ptr = make_rng(p.rng, s);
    Rng& rng = *rng_ptr;
    DenoiseHooks hooks;
    hooks.added = cond.added.empty() ? nullptr : &cond.added;
    if (trace_) hooks.step_latents = &trace_->step_latents, hooks.unet_inputs = &trace_->unet_inputs;
    hooks.on_step = [&](int i, int n, const Tensor& lat) { return report_step(cb, p, m, vae_, i, n, lat, seconds_since(t0)); };
    if (li.pi) {
      t0 = Clock::now();
      EditJob job{li.pi, li.pm, w, h};
      if (tiny) job.decode = decode_tiny;
      res.images.push_back(run_edit_job(m, p, job, *sampler, cond.cond, cond.uncond, rng, hooks, &res.warnings));
      res.timings.denoise_s += seconds_since(t0);
      res.timings.denoise_peak_rss_mb = std::max(res.timings.denoise_peak_rss_mb, peak_rss_bytes() / 1048576.0);
    } else {
      Tensor noise = rng.randn_nhwc({1, lh, lw, lc});
      scale_inplace(noise, sampler->init_noise_sigma());
      t0 = Clock::now();
      hooks.end_call = base_end_call(p, *sampler);
      Tensor lat = denoise(*m.unet, *sampler, cond.cond, cond.uncond, noise, p.cfg_scale, rng, hooks);
      if (hooks.end_call) lat = refine(p, std::move(lat), w, h, rng, cb);
      if (trace_) {  // the traced tensors share lat's buffer, which is scaled in place below
        trace_->final_latents = lat;
        lat = lat.clone();
      }
      res.timings.denoise_s += seconds_since(t0);
      res.timings.denoise_peak_rss_mb = std::max(res.timings.denoise_peak_rss_mb, peak_rss_bytes() / 1048576.0);
      reset_peak_rss();
      t0 = Clock::now();
      report("decode", 0, 1, t0);
      tensor_pool_trim();  // the UNet's cached buffers are not what the VAE needs: peak = max, not sum
      Tensor img;
      if (tiny) {
        img = decode_tiny(lat);
      } else {
        scale_inplace(lat, 1.0f / m.vae->config().scaling_factor);
        img = m.vae->decode_with(lat, p.vae_tiling);
      }
      res.timings.decode_s += seconds_since(t0);
      res.timings.decode_peak_rss_mb = std::max(res.timings.decode_peak_rss_mb, peak_rss_bytes() / 1048576.0);
      reset_peak_rss();
      report("decode", 1, 1, t0);
      res.images.push_back(tensor_to_image(img, 0));
    }
    res.seeds.push_back(s);
    res.infotext.push_back(infotext(s, res.images.back().width, res.images.back().height));
  }
  return res;
}

std::unique_ptr<FamilyEngine> make_sd_engine(std::unique_ptr<SdModel> model, const LoadOptions& opts) {
  return std::make_unique<SdEngine>(std::move(model), opts);
}

}  // namespace vg
