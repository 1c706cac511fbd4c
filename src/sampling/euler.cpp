// EulerDiscreteScheduler and EulerAncestralDiscreteScheduler (diffusers 0.27
// semantics): interpolated sigmas, init sigma sqrt(sigma_max^2+1) for leading
// spacing; Euler draws (and with s_churn = 0 ignores) noise every step.
#include <algorithm>
#include <cmath>

#include "sampling/sampler_registry.h"
#include "sampling/sigma_sampler.h"

namespace vg {

namespace {

class EulerSampler : public SigmaSampler {
 public:
  EulerSampler(const SchedulerConfig& cfg, const SamplerOptions& o) : SigmaSampler(cfg, o, Style{}) {}
  std::string name() const override { return "euler"; }

  void set_timesteps(int steps) override {
    make_schedule(steps);
    single_call_schedule();
    // EDM-style continuous timesteps (CosXL-type v-prediction models).
    if (cfg_.get<std::string>("timestep_type", "discrete") == "continuous" && cfg_.prediction_type == "v_prediction")
      for (size_t i = 0; i < timesteps_.size(); ++i) timesteps_[i] = 0.25f * std::log(sigmas_[i]);
  }

  Tensor step(const Tensor& m, size_t i, const Tensor& sample, Rng& rng) override {
    const float sigma = sigmas_[i];
    const bool churn = opt_.s_tmin <= sigma && sigma <= opt_.s_tmax;
    const float gamma =
        churn ? std::min(opt_.s_churn / static_cast<float>(sigmas_.size() - 1), std::sqrt(2.0f) - 1.0f) : 0.0f;
    Tensor noise = rng.randn_nhwc(sample.shape());
    const float sigma_hat = sigma * (gamma + 1.0f);
    Tensor x = sample;
    if (gamma > 0) x = lincomb(1.0f, sample, opt_.s_noise * std::sqrt(sigma_hat * sigma_hat - sigma * sigma), noise);
    const float dt = sigmas_[i + 1] - sigma_hat;
    const bool eps = cfg_.prediction_type == "epsilon";
    Tensor out(sample.shape());
    for (int64_t k = 0; k < x.numel(); ++k) {
      const float xs = x.data()[k];
      const float x0 = eps ? xs - sigma_hat * m.data()[k] : ve_x0(xs, m.data()[k], sigma);
      out.data()[k] = xs + (xs - x0) / sigma_hat * dt;
    }
    return out;
  }
};

class EulerAncestralSampler : public SigmaSampler {
 public:
  EulerAncestralSampler(const SchedulerConfig& cfg, const SamplerOptions& o) : SigmaSampler(cfg, o, Style{}) {}
  std::string name() const override { return "euler_a"; }
  void set_timesteps(int steps) override {
    make_schedule(steps);
    single_call_schedule();
  }

  Tensor step(const Tensor& m, size_t i, const Tensor& sample, Rng& rng) override {
    const float from = sigmas_[i], to = sigmas_[i + 1];
    const float eta = std::isnan(opt_.eta) ? 1.0f : opt_.eta;
    float up = std::sqrt(to * to * (from * from - to * to) / (from * from));
    if (eta != 1.0f) up = std::min(to, eta * up);  // k-diffusion's get_ancestral_step
    const float down = std::sqrt(to * to - up * up);
    const float dt = down - from;
    Tensor out(sample.shape());
    for (int64_t k = 0; k < sample.numel(); ++k) {
      const float xs = sample.data()[k];
      const float x0 = ve_x0(xs, m.data()[k], from);
      out.data()[k] = xs + (xs - x0) / from * dt;
    }
    Tensor noise = rng.randn_nhwc(sample.shape());
    for (int64_t k = 0; k < out.numel(); ++k) out.data()[k] = out.data()[k] + noise.data()[k] * (opt_.s_noise * up);
    return out;
  }
};

}  // namespace

std::unique_ptr<Sampler> make_euler_sampler(const SchedulerConfig& cfg, const SamplerOptions& o) {
  return std::make_unique<EulerSampler>(cfg, o);
}
std::unique_ptr<Sampler> make_euler_a_sampler(const SchedulerConfig& cfg, const SamplerOptions& o) {
  return std::make_unique<EulerAncestralSampler>(cfg, o);
}

}  // namespace vg
