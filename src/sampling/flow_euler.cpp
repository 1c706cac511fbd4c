// FlowMatchEulerDiscreteScheduler (rectified-flow DiTs: SD3, FLUX, Z-Image,
// Wan) and its Heun twin FlowMatchHeunDiscreteScheduler: sigmas from 1 down
// (the scheduler's grid, or the pipeline's linspace(1, 1/N, N)), shifted
// statically or by exp(mu) from the image token count; x += (s_next - s) * v.
#include "sampling/flow_shift.h"
#include "sampling/sampler_registry.h"
#include "sampling/sigma_sampler.h"

namespace vg {

namespace {

class FlowEulerSampler : public Sampler {
 public:
  FlowEulerSampler(const SchedulerConfig& cfg, const SamplerOptions& o, bool heun) : cfg_(cfg), opt_(o), heun_(heun) {}
  std::string name() const override { return heun_ ? "flow_heun" : "flow_euler"; }
  int order() const override { return heun_ ? 2 : 1; }

  void set_timesteps(int steps) override {
    const int n = cfg_.num_train_timesteps;
    const bool dynamic = flow_dynamic(cfg_) && opt_.image_seq_len > 0;
    // The unshifted grid: the pipeline's, or linspace(t(sigma_max), t(sigma_min)) / N_train
    // where the scheduler's own sigma range is already statically shifted.
    double t0 = 1.0, t1 = 1.0 / n;
    if (!opt_.flow_linear_sigmas && !dynamic) {
      t0 = flow_shifted(cfg_, 0, 1.0);
      t1 = flow_shifted(cfg_, 0, 1.0 / n);
    } else if (opt_.flow_linear_sigmas) {
      t1 = 1.0 / steps;
    }
    step_sigmas_.clear();
    for (int i = 0; i < steps; ++i) {
      const double s = steps == 1 ? t0 : t0 + (t1 - t0) * i / (steps - 1);
      step_sigmas_.push_back(static_cast<float>(flow_shifted(cfg_, opt_.image_seq_len, static_cast<float>(s))));
    }
    step_sigmas_.push_back(0.0f);
    sigmas_.clear();
    timesteps_.clear();
    calls_.clear();
    // Heun: one call per step at sigma_i, a second at sigma_{i+1} unless that is 0.
    for (int i = 0; i < steps; ++i) {
      calls_.push_back({i, false});
      if (heun_ && step_sigmas_[i + 1] > 0) calls_.push_back({i, true});
    }
    for (const Call& c : calls_) {
      const float s = step_sigmas_[c.step + (c.second ? 1 : 0)];
      sigmas_.push_back(s);
      timesteps_.push_back(s * static_cast<float>(n));
    }
    sigmas_.push_back(0.0f);
  }

  Tensor step(const Tensor& v, size_t i, const Tensor& x, Rng&) override {
    const Call c = calls_[i];
    const float dt = step_sigmas_[c.step + 1] - step_sigmas_[c.step];
    if (!heun_ || step_sigmas_[c.step + 1] == 0.0f) return lincomb(1.0f, x, dt, v);
    if (!c.second) {  // predictor: remember where the step started and its slope
      prev_ = x.clone();
      d1_ = v.clone();
      return lincomb(1.0f, x, dt, v);
    }
    Tensor d = lincomb(0.5f, d1_, 0.5f, v);
    return lincomb(1.0f, prev_, dt, d);
  }

  Tensor add_noise(const Tensor& x0, const Tensor& noise, size_t i) const override {
    const float s = sigmas_at_call(i);
    return lincomb(s, noise, 1 - s, x0);
  }

 private:
  struct Call {
    int step;
    bool second;
  };
  float sigmas_at_call(size_t i) const {
    const Call c = calls_[i];
    return step_sigmas_[c.step + (c.second ? 1 : 0)];
  }
  SchedulerConfig cfg_;
  SamplerOptions opt_;
  bool heun_;
  std::vector<float> step_sigmas_;
  std::vector<Call> calls_;
  Tensor prev_, d1_;
};

}  // namespace

std::unique_ptr<Sampler> make_flow_euler_sampler(const SchedulerConfig& cfg, const SamplerOptions& o) {
  return std::make_unique<FlowEulerSampler>(cfg, o, false);
}
std::unique_ptr<Sampler> make_flow_heun_sampler(const SchedulerConfig& cfg, const SamplerOptions& o) {
  return std::make_unique<FlowEulerSampler>(cfg, o, true);
}

}  // namespace vg
