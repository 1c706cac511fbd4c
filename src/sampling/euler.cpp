// EulerDiscreteScheduler (diffusers 0.27 semantics): interpolated sigmas,
// init sigma sqrt(sigma_max^2+1) for leading spacing, eps and v prediction.
#include <algorithm>
#include <cmath>

#include "sampling/sampler_registry.h"

namespace vg {

namespace {

class EulerSampler : public Sampler {
 public:
  explicit EulerSampler(const SchedulerConfig& cfg)
      : cfg_(cfg), train_sigmas_(training_sigmas(alphas_cumprod(cfg))) {}
  std::string name() const override { return "euler"; }

  void set_timesteps(int steps) override {
    timesteps_ = spaced_timesteps(cfg_, steps);
    sigmas_.clear();
    for (float t : timesteps_) sigmas_.push_back(static_cast<float>(interp_index(t, train_sigmas_)));
    sigmas_.push_back(0.0f);
  }

  float init_noise_sigma() const override {
    const float mx = *std::max_element(sigmas_.begin(), sigmas_.end());
    if (cfg_.timestep_spacing == "linspace" || cfg_.timestep_spacing == "trailing") return mx;
    return std::sqrt(mx * mx + 1.0f);
  }

  Tensor scale_model_input(const Tensor& x, size_t i) const override {
    const float sigma = sigmas_[i];
    const float denom = std::sqrt(sigma * sigma + 1.0f);
    Tensor out(x.shape());
    for (int64_t k = 0; k < x.numel(); ++k) out.data()[k] = x.data()[k] / denom;
    return out;
  }

  Tensor step(const Tensor& eps, size_t i, const Tensor& sample, TorchCpuGenerator& rng) override {
    // diffusers draws (and, with s_churn = 0, ignores) noise every step; keep the
    // generator in step so later draws match.
    rng.randn(sample.numel());
    const float sigma = sigmas_[i];
    const float sigma_hat = sigma;  // gamma = 0
    const float dt = sigmas_[i + 1] - sigma_hat;
    const bool v_pred = cfg_.prediction_type == "v_prediction";
    const float v_a = -sigma / std::sqrt(sigma * sigma + 1.0f), v_b = sigma * sigma + 1.0f;
    Tensor out(sample.shape());
    const float* m = eps.data();
    const float* s = sample.data();
    float* o = out.data();
    for (int64_t k = 0; k < sample.numel(); ++k) {
      const float pred = v_pred ? m[k] * v_a + s[k] / v_b
                                : cfg_.prediction_type == "sample" ? m[k] : s[k] - sigma_hat * m[k];
      const float derivative = (s[k] - pred) / sigma_hat;
      o[k] = s[k] + derivative * dt;
    }
    return out;
  }

  Tensor add_noise(const Tensor& x0, const Tensor& noise, size_t i) const override {
    const float sigma = sigmas_[i];
    Tensor out(x0.shape());
    for (int64_t k = 0; k < x0.numel(); ++k) out.data()[k] = x0.data()[k] + noise.data()[k] * sigma;
    return out;
  }

 private:
  SchedulerConfig cfg_;
  std::vector<float> train_sigmas_;
};

}  // namespace

std::unique_ptr<Sampler> make_euler_sampler(const SchedulerConfig& cfg) {
  return std::make_unique<EulerSampler>(cfg);
}

}  // namespace vg
