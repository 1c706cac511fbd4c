#include "pipelines/dit_engine.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <random>

#include "backend/cpu/ops.h"
#include "core/error.h"
#include "core/memory.h"
#include "pipelines/image_prep.h"
#include "pipelines/img2img.h"
#include "pipelines/latent_packing.h"
#include "pipelines/sd_engine.h"
#include "pipelines/sd_model.h"

namespace vg {

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// diffusers' mask processor for the flow inpaint pipelines: the mask at the
// generation size, binarised at 0.5, then nearest-resized to the latent grid.
std::vector<float> latent_mask(const GenerateParams& p, const Image& mask, int w, int h, int64_t lw, int64_t lh) {
  const Image fitted = fit_image(mask, w, h, p.resize_mode);
  std::vector<float> m = mask_from_image(fitted, has_transparency(mask));
  if (p.invert_mask)
    for (float& v : m) v = 1.0f - v;
  m = blur_mask(m, w, h, p.mask_blur);
  std::vector<float> out(static_cast<size_t>(lw * lh));
  for (int64_t y = 0; y < lh; ++y)
    for (int64_t x = 0; x < lw; ++x) {
      const int64_t sy = y * h / lh, sx = x * w / lw;
      out[y * lw + x] = m[sy * w + sx] >= 0.5f ? 1.0f : 0.0f;
    }
  return out;
}

// (1 - m) * known + m * x per latent pixel (NHWC), in place into x.
void blend_known(Tensor& x, const Tensor& known, const std::vector<float>& m) {
  const int64_t c = x.dim(3), px = x.numel() / c;
  for (int64_t i = 0; i < px; ++i) {
    const float a = m[i];
    for (int64_t k = 0; k < c; ++k) x.data()[i * c + k] = (1 - a) * known.data()[i * c + k] + a * x.data()[i * c + k];
  }
}

// The flow img2img pipelines' start: t_start = int(N - N * strength) with the
// product kept in floating point (the SD pipelines truncate it first).
size_t first_call(const Sampler& s, int steps, double strength) {
  const size_t t_start = static_cast<size_t>(std::max(steps - std::min(steps * strength, double(steps)), 0.0));
  const size_t first = t_start * static_cast<size_t>(s.order());
  if (first >= s.timesteps().size())
    fail(ErrorCode::kInvalidArgument, "strength " + std::to_string(strength) + " with " + std::to_string(steps) +
                                          " steps runs no denoising step; raise strength or steps");
  return first;
}

}  // namespace

ModelInfo dit_model_info(const std::string& family, const std::string& path, const LatentCodec& vae, int64_t patch,
                         int default_size) {
  ModelInfo info;
  info.family = family;
  info.path = path;
  info.name = std::filesystem::path(path).filename().string();
  if (info.name.empty()) info.name = std::filesystem::path(path).parent_path().filename().string();
  info.prediction_type = "flow_prediction";
  info.vae_scale = static_cast<int>(vae.scale());
  info.size_multiple = info.vae_scale * static_cast<int>(patch);
  info.default_width = info.default_height = default_size;
  return info;
}

std::unique_ptr<Sampler> DitEngine::request_sampler(const GenerateParams& p, int w, int h, SamplerChoice* choice) const {
  SamplerOptions o;
  if (p.eta >= 0) o.eta = p.eta;
  o.s_noise = p.s_noise;
  sampler_options(p, w, h, &o);
  SamplerChoice c = resolve_sampler(p.sampler, p.scheduler, parts_.scheduler, o);
  auto s = make_sampler(c, parts_.scheduler, o);
  s->set_timesteps(p.steps);
  if (choice) *choice = c;
  return s;
}

Status DitEngine::validate(const GenerateParams& p, const ImageInputs& images) const {
  const ModelInfo& mi = parts_.info;
  auto sized = guard([&] {
    const RequestImages l(p, images);
    if (l.pi && !parts_.vae->has_encoder())
      fail(ErrorCode::kMissingComponent, "this model's VAE has no encoder weights; image-to-image needs a full VAE");
    return l.pi ? edit_size(p, *l.pi, mi.size_multiple)
                : std::pair<int, int>{p.width ? p.width : mi.default_width, p.height ? p.height : mi.default_height};
  });
  if (!sized) return sized.error();
  const int w = sized->first, h = sized->second;
  if (Status s = check_size_multiple(w, h, mi.size_multiple, mi.family); !s) return s;
  if (p.max_sequence_length > max_text_tokens())
    return Error{ErrorCode::kInvalidArgument, "max_sequence_length " + std::to_string(p.max_sequence_length) +
                                                  " is above this model's " + std::to_string(max_text_tokens()) +
                                                  " text tokens; use at most " + std::to_string(max_text_tokens())};
  auto r = guard([&] {
    make_rng(p.rng, 0);
    request_sampler(p, w, h, nullptr);
    return 0;
  });
  if (!r) return r.error();
  return validate_family(p, w, h);
}

GenerateResult DitEngine::generate(const GenerateParams& p, const ImageInputs& images, const ProgressCallback& cb) {
  const ModelInfo& mi = parts_.info;
  GenerateResult res;
  const RequestImages li(p, images);
  const std::pair<int, int> size = li.pi ? edit_size(p, *li.pi, mi.size_multiple)
                                         : std::pair<int, int>{p.width ? p.width : mi.default_width,
                                                               p.height ? p.height : mi.default_height};
  const int w = size.first, h = size.second;
  const uint64_t seed = p.seed >= 0 ? static_cast<uint64_t>(p.seed) : (std::random_device{}() & 0xffffffffu);
  auto t0 = Clock::now();
  auto report = [&](const char* stage, int step, int total) {
    if (cb && !cb(Progress{stage, step, total, seconds_since(t0)})) fail(ErrorCode::kCancelled, "generation was cancelled");
  };
  reset_peak_rss();
  report("text_encode", 0, 1);
  encode_prompts(p, &res.warnings);
  if (!keep_text_) release_text_encoders();
  res.timings.text_encode_s = seconds_since(t0);
  res.timings.text_encode_peak_rss_mb = peak_rss_bytes() / 1048576.0;
  report("text_encode", 1, 1);
  if (hash_.empty()) hash_ = model_hash(parts_.hash_source);
  SamplerChoice choice;
  request_sampler(p, w, h, &choice);
  res.warnings.insert(res.warnings.end(), choice.warnings.begin(), choice.warnings.end());
  res.sampling = {p.sampler, choice.sampler, p.scheduler, choice.schedule, canonical_rng_name(p.rng)};
  const int64_t scale = parts_.vae->scale(), lh = h / scale, lw = w / scale;
  const int64_t lc = parts_.vae->channels();
  for (int b = 0; b < p.batch_size; ++b) {
    const uint64_t s = seed + static_cast<uint64_t>(b);
    auto sampler = request_sampler(p, w, h, nullptr);
    res.sampling.scheduler_effective = sampler->schedule();
    auto rng = make_rng(p.rng, s);
    // The flow pipelines do not pass their generator to scheduler.step: a
    // stochastic sampler's draws come from torch's global generator, which
    // diffusers' callers seed with the same seed.
    std::unique_ptr<Rng> step_rng = make_rng(p.rng, s);
    if (packed_latents()) step_rng = packed_noise_rng(std::move(step_rng));
    reset_peak_rss();
    t0 = Clock::now();
    Tensor x, x0, noise;
    std::vector<float> mask;
    size_t first = 0;
    if (li.pi) {
      first = first_call(*sampler, p.steps, p.strength);
      x0 = parts_.vae->encode(image_to_tensor(fit_image(*li.pi, w, h, p.resize_mode)), *rng, p.vae_tiling);
      noise = rng->randn_nhwc({1, lh, lw, lc});
      if (li.pm) {
        mask = latent_mask(p, *li.pm, w, h, lw, lh);
        for (int d = 0; d < extra_inpaint_draws(); ++d) rng->randn_nhwc({1, lh, lw, lc});
      }
      x = sampler->add_noise(x0, noise, first);
    } else {
      x = rng->randn_nhwc({1, lh, lw, lc});
    }
    const size_t calls = sampler->timesteps().size();
    for (size_t i = first; i < calls; ++i) {
      if (trace_) trace_->unet_inputs.push_back(x.clone());
      Tensor v = velocity(p, x, *sampler, i);
      x = sampler->step(v, i, x, *step_rng);
      if (!mask.empty()) {  // the known region, re-noised to the next level (clean after the last step)
        Tensor known = i + 1 < calls ? sampler->add_noise(x0, noise, i + 1) : x0;
        blend_known(x, known, mask);
      }
      if (trace_) trace_->step_latents.push_back(x.clone());
      if (cb && !cb(Progress{"denoise", static_cast<int>(i - first + 1), static_cast<int>(calls - first), seconds_since(t0)}))
        fail(ErrorCode::kCancelled, "generation was cancelled");
    }
    if (trace_) trace_->final_latents = x.clone();
    res.timings.denoise_s += seconds_since(t0);
    res.timings.denoise_peak_rss_mb = std::max(res.timings.denoise_peak_rss_mb, peak_rss_bytes() / 1048576.0);
    reset_peak_rss();
    t0 = Clock::now();
    report("decode", 0, 1);
    tensor_pool_trim();
    const Tensor img = parts_.vae->decode(std::move(x), p.vae_tiling);
    res.timings.decode_s += seconds_since(t0);
    res.timings.decode_peak_rss_mb = std::max(res.timings.decode_peak_rss_mb, peak_rss_bytes() / 1048576.0);
    report("decode", 1, 1);
    res.images.push_back(tensor_to_image(img, 0));
    res.seeds.push_back(s);
    res.infotext.push_back(format_infotext(p, s, res.images.back().width, res.images.back().height, mi.name, hash_));
  }
  return res;
}

}  // namespace vg
