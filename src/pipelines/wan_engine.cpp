// The Wan 2.2 TI2V engine (diffusers' WanPipeline and, with an init image,
// WanImageToVideoPipeline on the TI2V path): UMT5 prompt states, one noise
// draw [1, 48, L, h, w], per-token timesteps (image-to-video gives the first
// latent frame t = 0 and keeps it at the image's latent), CFG as
// uncond + g (cond - uncond) when g > 1, then the VAE in time chunks.
#include <algorithm>
#include <chrono>
#include <random>

#include "core/error.h"
#include "core/memory.h"
#include "pipelines/image_prep.h"
#include "pipelines/sd_engine.h"
#include "pipelines/sd_model.h"
#include "pipelines/wan_model.h"
#include "pipelines/wan_prompt.h"
#include "sampling/sampler.h"

namespace vg {

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// torch.randn([1, C, L, h, w]) laid out as [L, h, w, C]: the same draw order
// as torch.randn([1, C, L*h, w]), which randn_nhwc lays out as [1, L*h, w, C].
Tensor video_noise(Rng& rng, int64_t l, int64_t h, int64_t w, int64_t c) {
  return rng.randn_nhwc({1, l * h, w, c}).reshape({l, h, w, c});
}

// The sizes and frame count a request runs at, after the pipeline's rounding.
struct VideoShape {
  int width = 0, height = 0, frames = 0;
  std::vector<std::string> warnings;
};

class WanEngine : public FamilyEngine {
 public:
  WanEngine(std::unique_ptr<WanModel> m, const LoadOptions& opts) : m_(std::move(m)), keep_text_(opts.keep_text_encoder) {}
  const ModelInfo& info() const override { return m_->info; }
  std::string preset_family() const override { return "wan22-ti2v"; }

  Status validate(const GenerateParams& p, const ImageInputs& images) const override {
    auto r = guard([&] {
      const RequestImages li(p, images);
      if (li.pm) fail(ErrorCode::kCapabilityNotSupported, "Wan 2.2 takes no mask (no video inpainting); drop --mask");
      if (p.task == "text_to_image" || p.task == "image_to_image" || p.task == "inpaint")
        fail(ErrorCode::kCapabilityNotSupported, "Wan 2.2 makes videos; use --task text_to_video or image_to_video "
                                                 "(or leave --task out), with --frames 1 for a single frame");
      shape_of(p, li);
      if (p.max_sequence_length > 512)
        fail(ErrorCode::kInvalidArgument, "max_sequence_length " + std::to_string(p.max_sequence_length) +
                                              " is above UMT5's 512 text tokens; use at most 512");
      make_rng(p.rng, 0);
      SamplerOptions o;
      make_sampler(resolve_sampler(p.sampler, p.scheduler, m_->scheduler, o), m_->scheduler, o);
      return 0;
    });
    return r ? Status() : Status(r.error());
  }

  GenerateResult generate(const GenerateParams& p_in, const ImageInputs& images, const ProgressCallback& cb) override {
    GenerateParams p = p_in;
    GenerateResult res;
    const RequestImages li(p, images);
    VideoShape vs = shape_of(p, li);
    res.warnings = vs.warnings;
    p.frames = vs.frames;
    p.fps = p.fps > 0 ? p.fps : 24.0f;
    const uint64_t seed = p.seed >= 0 ? static_cast<uint64_t>(p.seed) : (std::random_device{}() & 0xffffffffu);
    auto t0 = Clock::now();
    auto report = [&](const char* stage, int step, int total) {
      if (cb && !cb(Progress{stage, step, total, seconds_since(t0)})) fail(ErrorCode::kCancelled, "generation was cancelled");
    };
    reset_peak_rss();
    report("text_encode", 0, 1);
    const int msl = p.max_sequence_length > 0 ? p.max_sequence_length : 512;
    if (p.clip_skip > 1) res.warnings.push_back("Wan takes UMT5's last layer; --clip-skip is ignored");
    if (p.guidance >= 0) res.warnings.push_back("Wan 2.2 has no distilled guidance; --guidance is ignored (use --cfg-scale)");
    const bool cfg = p.cfg_scale > 1.0f;
    const WanContext cond = m_->transformer->prepare_text(
        squeeze(wan_encode_prompt(*m_->tokenizer, *m_->text_encoder, p.prompt, msl, &res.warnings)));
    WanContext uncond;
    if (cfg)
      uncond = m_->transformer->prepare_text(
          squeeze(wan_encode_prompt(*m_->tokenizer, *m_->text_encoder, p.negative_prompt, msl, &res.warnings)));
    if (!keep_text_) m_->text_encoder->release_weights();
    res.timings.text_encode_s = seconds_since(t0);
    res.timings.text_encode_peak_rss_mb = peak_rss_bytes() / 1048576.0;
    report("text_encode", 1, 1);
    if (hash_.empty()) hash_ = model_hash(m_->hash_source);
    SamplerOptions so;
    const SamplerChoice choice = resolve_sampler(p.sampler, p.scheduler, m_->scheduler, so);
    res.warnings.insert(res.warnings.end(), choice.warnings.begin(), choice.warnings.end());
    res.sampling = {p.sampler, choice.sampler, p.scheduler, choice.schedule, canonical_rng_name(p.rng)};
    const WanVaeConfig& vc = m_->vae->config();
    const int64_t scale = vc.spatial_scale(), lh = vs.height / scale, lw = vs.width / scale;
    const int64_t lf = (vs.frames - 1) / vc.temporal_scale() + 1, c = vc.z_dim;
    const int64_t ph = m_->config.patch_size[1], pw = m_->config.patch_size[2];
    const int64_t tokens_per_frame = (lh / ph) * (lw / pw);
    for (int b = 0; b < p.batch_size; ++b) {
      const uint64_t s = seed + static_cast<uint64_t>(b);
      auto sampler = make_sampler(choice, m_->scheduler, so);
      sampler->set_timesteps(p.steps);
      res.sampling.scheduler_effective = sampler->schedule();
      auto rng = make_rng(p.rng, s);
      std::unique_ptr<Rng> step_rng = make_rng(p.rng, s);
      reset_peak_rss();
      t0 = Clock::now();
      Tensor x = video_noise(*rng, lf, lh, lw, c);
      Tensor first;  // image-to-video: the first frame's normalised latent [1, lh, lw, c]
      if (li.pi) first = encode_first_frame(fit_image(*li.pi, vs.width, vs.height, p.resize_mode));
      const size_t calls = sampler->timesteps().size();
      for (size_t i = 0; i < calls; ++i) {
        if (first.numel()) std::copy(first.data(), first.data() + first.numel(), x.data());
        if (trace_) trace_->unet_inputs.push_back(x.clone());
        const float t = sampler->timesteps()[i];
        std::vector<float> tt(static_cast<size_t>(lf * tokens_per_frame), t);
        if (first.numel()) std::fill(tt.begin(), tt.begin() + tokens_per_frame, 0.0f);
        Tensor v = m_->transformer->forward(x, tt, cond);
        if (cfg) {
          const Tensor u = m_->transformer->forward(x, tt, uncond);
          const float g = p.cfg_scale;
          for (int64_t k = 0; k < v.numel(); ++k) v.data()[k] = u.data()[k] + g * (v.data()[k] - u.data()[k]);
        }
        x = sampler->step(v, i, x, *step_rng);
        if (trace_) trace_->step_latents.push_back(x.clone());
        if (cb && !cb(Progress{"denoise", static_cast<int>(i + 1), static_cast<int>(calls), seconds_since(t0)}))
          fail(ErrorCode::kCancelled, "generation was cancelled");
      }
      if (first.numel()) std::copy(first.data(), first.data() + first.numel(), x.data());
      if (trace_) trace_->final_latents = x.clone();
      res.timings.denoise_s += seconds_since(t0);
      res.timings.denoise_peak_rss_mb = std::max(res.timings.denoise_peak_rss_mb, peak_rss_bytes() / 1048576.0);
      reset_peak_rss();
      t0 = Clock::now();
      report("decode", 0, 1);
      tensor_pool_trim();
      const WanTiling tiling{wan_vae_tiling_wanted(p.vae_tiling, vs.width, vs.height)};
      const Tensor video = m_->vae->decode(denormalize(std::move(x)), tiling);
      res.timings.decode_s += seconds_since(t0);
      res.timings.decode_peak_rss_mb = std::max(res.timings.decode_peak_rss_mb, peak_rss_bytes() / 1048576.0);
      report("decode", 1, 1);
      Video out;
      out.width = static_cast<int>(video.dim(2));
      out.height = static_cast<int>(video.dim(1));
      out.fps = p.fps;
      for (int64_t f = 0; f < video.dim(0); ++f) out.frames.push_back(tensor_to_image(video, f));
      res.videos.push_back(std::move(out));
      res.seeds.push_back(s);
      res.infotext.push_back(format_infotext(p, s, vs.width, vs.height, m_->info.name, hash_));
    }
    return res;
  }

 private:
  static Tensor squeeze(Tensor t) { return t.reshape({t.dim(1), t.dim(2)}); }

  // Sizes floored to multiples of VAE scale x patch (32) after a check for
  // multiples of 16, frames snapped down to 4k+1, as WanPipeline does.
  VideoShape shape_of(const GenerateParams& p, const RequestImages& li) const {
    VideoShape v;
    v.width = p.width ? p.width : (li.pi ? li.pi->width : m_->info.default_width);
    v.height = p.height ? p.height : (li.pi ? li.pi->height : m_->info.default_height);
    const int check = m_->info.vae_scale, mult = m_->info.size_multiple;
    if (Status s = check_size_multiple(v.width, v.height, check, "Wan"); !s) throw VgException(s.error().code, s.error().message);
    if (v.width % mult || v.height % mult) {
      const int w = v.width / mult * mult, h = v.height / mult * mult;
      const std::string msg = "Wan needs sizes in multiples of " + std::to_string(mult) + "; " + std::to_string(v.width) +
                              "x" + std::to_string(v.height) + " becomes " + std::to_string(w) + "x" + std::to_string(h);
      if (p.strict || w == 0 || h == 0) fail(ErrorCode::kInvalidArgument, msg + " (use that size, or drop --strict)");
      v.warnings.push_back(msg);
      v.width = w, v.height = h;
    }
    const int tscale = static_cast<int>(m_->vae->config().temporal_scale());
    v.frames = p.frames > 0 ? p.frames : m_->info.default_frames;
    if ((v.frames - 1) % tscale) {
      const int snapped = (v.frames - 1) / tscale * tscale + 1;
      const std::string msg = "Wan makes " + std::to_string(tscale) + "k+1 frames; --frames " + std::to_string(v.frames) +
                              " becomes " + std::to_string(snapped);
      if (p.strict) fail(ErrorCode::kInvalidArgument, msg + " (ask for " + std::to_string(snapped) + " or drop --strict)");
      v.warnings.push_back(msg);
      v.frames = snapped;
    }
    return v;
  }

  // (mean - latents_mean) * (1 / latents_std) of the image's VAE posterior (argmax: no draw).
  Tensor encode_first_frame(const Image& img) const {
    if (!m_->vae->has_encoder())
      fail(ErrorCode::kMissingComponent, "this Wan VAE has no encoder weights; image-to-video needs the full VAE");
    Tensor mean = m_->vae->encode(image_to_tensor(img)).mean;
    const WanVaeConfig& vc = m_->vae->config();
    const int64_t c = vc.z_dim;
    for (int64_t i = 0; i < mean.numel(); ++i) mean.data()[i] = (mean.data()[i] - vc.latents_mean[i % c]) * (1.0f / vc.latents_std[i % c]);
    return mean;
  }

  // latents / (1 / latents_std) + latents_mean, per channel (as diffusers writes it).
  Tensor denormalize(Tensor z) const {
    const WanVaeConfig& vc = m_->vae->config();
    const int64_t c = vc.z_dim;
    for (int64_t i = 0; i < z.numel(); ++i) z.data()[i] = z.data()[i] / (1.0f / vc.latents_std[i % c]) + vc.latents_mean[i % c];
    return z;
  }

  std::unique_ptr<WanModel> m_;
  bool keep_text_ = false;
  std::string hash_;
};

}  // namespace

std::unique_ptr<FamilyEngine> make_wan_engine(std::unique_ptr<WanModel> model, const LoadOptions& opts) {
  return std::make_unique<WanEngine>(std::move(model), opts);
}

}  // namespace vg
