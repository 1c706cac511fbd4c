// Two-evaluation samplers in diffusers' per-call form: HeunDiscreteScheduler,
// KDPM2DiscreteScheduler (DPM2) and KDPM2AncestralDiscreteScheduler (DPM2 a).
// Each step evaluates the model at sigma_i, then at a second point; the last
// step is a single Euler call.
#include <cmath>

#include "sampling/sampler_registry.h"
#include "sampling/sigma_sampler.h"

namespace vg {

namespace {

// [a0, a1, a1, a2, a2, ..., aN, aN, aN] as diffusers' repeat_interleave pattern.
std::vector<float> interleave2(const std::vector<float>& a) {
  std::vector<float> out{a.front()};
  for (size_t i = 1; i < a.size(); ++i) out.insert(out.end(), {a[i], a[i]});
  out.push_back(a.back());
  return out;
}

class HeunSampler : public SigmaSampler {
 public:
  HeunSampler(const SchedulerConfig& cfg, const SamplerOptions& o) : SigmaSampler(cfg, o, Style{}) {}
  std::string name() const override { return "heun"; }
  int order() const override { return 2; }

  void set_timesteps(int steps) override {
    make_schedule(steps);
    sigmas_ = {step_sigmas_.front()};
    for (size_t i = 1; i + 1 < step_sigmas_.size(); ++i) sigmas_.insert(sigmas_.end(), {step_sigmas_[i], step_sigmas_[i]});
    sigmas_.push_back(step_sigmas_.back());
    timesteps_ = {step_ts_.front()};
    for (size_t i = 1; i < step_ts_.size(); ++i) timesteps_.insert(timesteps_.end(), {step_ts_[i], step_ts_[i]});
    model_sigmas_.assign(sigmas_.begin(), sigmas_.end() - 1);
    prev_derivative_ = Tensor();
  }

  Tensor step(const Tensor& m, size_t i, const Tensor& sample, Rng&) override {
    const bool first = prev_derivative_.empty();
    const float sigma = first ? sigmas_[i] : sigmas_[i - 1];
    const float next = first ? sigmas_[i + 1] : sigmas_[i];
    const float s_in = first ? sigma : next;
    Tensor d(sample.shape());
    for (int64_t k = 0; k < sample.numel(); ++k) {
      const float xs = sample.data()[k];
      d.data()[k] = (xs - ve_x0(xs, m.data()[k], s_in)) / (first ? sigma : next);
    }
    if (first) {
      prev_derivative_ = d;
      dt_ = next - sigma;
      first_sample_ = sample;
      return lincomb(1.0f, sample, dt_, d);
    }
    Tensor avg = lincomb(0.5f, prev_derivative_, 0.5f, d);
    Tensor out = lincomb(1.0f, first_sample_, dt_, avg);
    prev_derivative_ = Tensor();
    first_sample_ = Tensor();
    return out;
  }

 private:
  Tensor prev_derivative_, first_sample_;
  float dt_ = 0;
};

// DPM2 (Karras et al. 2022, Algorithm 2 with the log-midpoint); ancestral
// variant adds noise with sigma_up after each two-call step.
class Dpm2Sampler : public SigmaSampler {
 public:
  Dpm2Sampler(const SchedulerConfig& cfg, const SamplerOptions& o, bool ancestral)
      : SigmaSampler(cfg, o, Style{}), ancestral_(ancestral) {}
  std::string name() const override { return ancestral_ ? "dpm2_a" : "dpm2"; }
  int order() const override { return 2; }

  void set_timesteps(int steps) override {
    make_schedule(steps);
    const auto& s = step_sigmas_;  // N + 1, last 0
    const size_t n = s.size();
    std::vector<float> up(n, 0.0f), down(n, 0.0f), mid(n, 0.0f);
    for (size_t i = 0; i < n; ++i) {
      const float to = i + 1 < n ? s[i + 1] : 0.0f;
      up[i] = std::sqrt(to * to * (s[i] * s[i] - to * to) / (s[i] * s[i]));
      down[i] = i + 1 < n ? std::sqrt(to * to - up[i] * up[i]) : 0.0f;
    }
    if (!ancestral_) {
      // geometric mean of sigma_i and sigma_{i-1} (log-lerp at 0.5)
      for (size_t i = 0; i < n; ++i) {
        const float prev = s[(i + n - 1) % n];
        mid[i] = s[i] == 0 || prev == 0 ? 0.0f : std::exp(std::log(s[i]) + 0.5f * (std::log(prev) - std::log(s[i])));
      }
    } else {
      for (size_t i = 0; i + 2 < n; ++i)
        mid[i] = std::exp(std::log(s[i]) + 0.5f * (std::log(down[i]) - std::log(s[i])));
    }
    sig_ = interleave2(s);
    mid_ = interleave2(mid);
    up_ = interleave2(up);
    down_ = interleave2(down);
    sigmas_ = sig_;
    // timesteps: t0, then (t at the midpoint, t_{i}) pairs
    std::vector<float> tmid;
    for (float v : mid) tmid.push_back(static_cast<float>(sigma_to_t(v, log_sigmas_)));
    timesteps_ = {step_ts_.front()};
    model_sigmas_ = {s.front()};
    for (size_t i = 1; i < step_ts_.size(); ++i) {
      const size_t mi = ancestral_ ? i - 1 : i;
      timesteps_.insert(timesteps_.end(), {tmid[mi], step_ts_[i]});
      model_sigmas_.insert(model_sigmas_.end(), {mid[mi], s[i]});
    }
    first_sample_ = Tensor();
  }

  Tensor step(const Tensor& m, size_t i, const Tensor& sample, Rng& rng) override {
    const bool first = first_sample_.empty();
    float sigma, interp, next = 0, up = 0, down = 0;
    if (!ancestral_) {
      sigma = first ? sig_[i] : sig_[i - 1];
      interp = first ? mid_[i + 1] : mid_[i];
      next = first ? sig_[i + 1] : sig_[i];
    } else {
      sigma = first ? sig_[i] : sig_[i - 1];
      interp = first ? mid_[i] : mid_[i - 1];
      up = up_[first ? i : i - 1];
      down = down_[i == 0 ? 0 : i - 1];
    }
    Tensor noise = ancestral_ ? rng.randn_nhwc(sample.shape()) : Tensor();
    const float s_in = first ? sigma : interp;
    Tensor d(sample.shape());
    for (int64_t k = 0; k < sample.numel(); ++k) {
      const float xs = sample.data()[k];
      d.data()[k] = (xs - ve_x0(xs, m.data()[k], s_in)) / s_in;
    }
    if (first) {
      first_sample_ = sample;
      return lincomb(1.0f, sample, interp - sigma, d);
    }
    Tensor out = lincomb(1.0f, first_sample_, (ancestral_ ? down : next) - sigma, d);
    first_sample_ = Tensor();
    if (ancestral_)
      for (int64_t k = 0; k < out.numel(); ++k) out.data()[k] = out.data()[k] + noise.data()[k] * (opt_.s_noise * up);
    return out;
  }

 private:
  bool ancestral_;
  std::vector<float> sig_, mid_, up_, down_;
  Tensor first_sample_;
};

}  // namespace

std::unique_ptr<Sampler> make_heun_sampler(const SchedulerConfig& cfg, const SamplerOptions& o) {
  return std::make_unique<HeunSampler>(cfg, o);
}
std::unique_ptr<Sampler> make_dpm2_sampler(const SchedulerConfig& cfg, const SamplerOptions& o, bool ancestral) {
  return std::make_unique<Dpm2Sampler>(cfg, o, ancestral);
}

}  // namespace vg
