// DDIMScheduler (diffusers 0.27 semantics), eta >= 0; eta > 0 draws one noise
// tensor per step from the generator.
#include <cmath>

#include "sampling/sampler_registry.h"
#include "sampling/sigma_schedules.h"

namespace vg {

namespace {

class DdimSampler : public Sampler {
 public:
  DdimSampler(const SchedulerConfig& cfg, const SamplerOptions& o) : cfg_(cfg), eta_(std::isnan(o.eta) ? 0.0f : o.eta), s_noise_(o.s_noise) {
    ac_ = alphas_cumprod(cfg);
    // set_alpha_to_one=false (SD) uses abar[0] past the end; true uses 1.
    final_ac_ = cfg.set_alpha_to_one ? 1.0f : ac_[0];
  }
  std::string name() const override { return "ddim"; }
  void use_spacing(const std::string& s) {
    if (is_spacing_schedule(s)) schedule_ = s;
  }

  void set_timesteps(int steps) override {
    steps_ = steps;
    const std::string spacing = is_spacing_schedule(schedule_) ? schedule_ : cfg_.spacing("leading");
    timesteps_ = spaced_timesteps(cfg_, spacing, steps);
    if (spacing == "linspace")  // DDIM rounds linspace timesteps to integers
      for (auto& t : timesteps_) t = std::nearbyint(t);
    sigmas_.clear();
  }

  Tensor step(const Tensor& eps, size_t i, const Tensor& sample, Rng& rng) override {
    const int t = static_cast<int>(timesteps_[i]);
    const int prev_t = t - cfg_.num_train_timesteps / steps_;
    const float a_t = ac_.at(t);
    const float a_prev = prev_t >= 0 ? ac_.at(prev_t) : final_ac_;
    const float b_t = 1.0f - a_t;
    const float var = (1.0f - a_prev) / b_t * (1.0f - a_t / a_prev);
    const float std_dev = eta_ * std::sqrt(var);
    const bool v_pred = cfg_.prediction_type == "v_prediction";
    const float sa = std::sqrt(a_t), sb = std::sqrt(b_t), sap = std::sqrt(a_prev);
    const float dir = std::sqrt(1.0f - a_prev - std_dev * std_dev);
    const Tensor noise = eta_ > 0 ? rng.randn_nhwc(sample.shape()) : Tensor();
    Tensor out(sample.shape());
    for (int64_t k = 0; k < sample.numel(); ++k) {
      const float x = sample.data()[k], m = eps.data()[k];
      float x0, e;
      if (v_pred) {
        x0 = sa * x - sb * m;
        e = sa * m + sb * x;
      } else if (cfg_.prediction_type == "sample") {
        x0 = m;
        e = (x - sa * x0) / sb;
      } else {
        x0 = (x - sb * m) / sa;
        e = m;
      }
      float prev = sap * x0 + dir * e;
      if (eta_ > 0) prev = prev + std_dev * s_noise_ * noise.data()[k];
      out.data()[k] = prev;
    }
    return out;
  }

  Tensor add_noise(const Tensor& x0, const Tensor& noise, size_t i) const override {
    const float a = ac_.at(static_cast<size_t>(timesteps_[i]));
    const float sa = std::sqrt(a), sb = std::sqrt(1.0f - a);
    Tensor out(x0.shape());
    for (int64_t k = 0; k < x0.numel(); ++k) out.data()[k] = sa * x0.data()[k] + sb * noise.data()[k];
    return out;
  }

 private:
  SchedulerConfig cfg_;
  float eta_, s_noise_;
  int steps_ = 0;
  std::vector<float> ac_;
  float final_ac_ = 1.0f;
};

}  // namespace

std::unique_ptr<Sampler> make_ddim_sampler(const SchedulerConfig& cfg, const SamplerOptions& o) {
  auto s = std::make_unique<DdimSampler>(cfg, o);
  s->use_spacing(o.schedule);
  return s;
}

}  // namespace vg
