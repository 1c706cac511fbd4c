// LCMScheduler and TCDScheduler (diffusers 0.27): timesteps picked from the
// original 50-step distillation grid; LCM re-noises to the next timestep after
// every step but the last, TCD with gamma (eta, default 0.3) of fresh noise.
#include <cmath>

#include "core/error.h"
#include "sampling/sampler_registry.h"

namespace vg {

namespace {

class LcmSampler : public Sampler {
 public:
  LcmSampler(const SchedulerConfig& cfg, const SamplerOptions& o, bool tcd)
      : cfg_(cfg), tcd_(tcd), ac_(alphas_cumprod(cfg)), s_noise_(o.s_noise) {
    final_ac_ = cfg.get("set_alpha_to_one", true) ? 1.0f : ac_[0];
    eta_ = std::isnan(o.eta) ? 0.3f : o.eta;
  }
  std::string name() const override { return tcd_ ? "tcd" : "lcm"; }

  void set_timesteps(int steps) override {
    const int original = cfg_.get("original_inference_steps", 50);
    const int k = cfg_.num_train_timesteps / original;
    if (steps > original)
      fail(ErrorCode::kInvalidArgument, std::string(tcd_ ? "TCD" : "LCM") + " supports at most " +
                                            std::to_string(original) + " steps (original_inference_steps)");
    std::vector<float> origin;  // descending distillation grid
    for (int i = original; i >= 1; --i) origin.push_back(static_cast<float>(i * k - 1));
    timesteps_.clear();
    for (int i = 0; i < steps; ++i)
      timesteps_.push_back(origin[static_cast<size_t>(std::floor(static_cast<double>(origin.size()) * i / steps))]);
    steps_ = steps;
  }

  Tensor step(const Tensor& m, size_t i, const Tensor& x, Rng& rng) override {
    const int t = static_cast<int>(timesteps_[i]);
    const bool last = i + 1 >= timesteps_.size();
    const int prev_t = last ? (tcd_ ? 0 : t) : static_cast<int>(timesteps_[i + 1]);
    const float a_t = ac_.at(t), b_t = 1 - a_t;
    const float a_prev = prev_t >= 0 ? ac_.at(prev_t) : final_ac_;
    Tensor x0(x.shape()), e(x.shape());
    for (int64_t k = 0; k < x.numel(); ++k) {
      const float xs = x.data()[k], mo = m.data()[k];
      if (cfg_.prediction_type == "v_prediction") {
        x0.data()[k] = std::sqrt(a_t) * xs - std::sqrt(b_t) * mo;
        e.data()[k] = std::sqrt(a_t) * mo + std::sqrt(b_t) * xs;
      } else if (cfg_.prediction_type == "sample") {
        x0.data()[k] = mo;
        e.data()[k] = (xs - std::sqrt(a_t) * mo) / std::sqrt(b_t);
      } else {
        x0.data()[k] = (xs - std::sqrt(b_t) * mo) / std::sqrt(a_t);
        e.data()[k] = mo;
      }
    }
    if (tcd_) return tcd_step(x0, e, prev_t, a_prev, last, rng);
    // consistency-model boundary condition
    const float st = static_cast<float>(t) * cfg_.get("timestep_scaling", 10.0f);
    const float c_skip = 0.25f / (st * st + 0.25f);
    const float c_out = st / std::sqrt(st * st + 0.25f);
    Tensor denoised(x.shape());
    for (int64_t k = 0; k < x.numel(); ++k) denoised.data()[k] = c_out * x0.data()[k] + c_skip * x.data()[k];
    if (last) return denoised;
    Tensor noise = rng.randn_nhwc(x.shape());
    const float ca = std::sqrt(a_prev), cb = std::sqrt(1 - a_prev) * s_noise_;
    for (int64_t k = 0; k < x.numel(); ++k) denoised.data()[k] = ca * denoised.data()[k] + cb * noise.data()[k];
    return denoised;
  }

  Tensor add_noise(const Tensor& x0, const Tensor& noise, size_t i) const override {
    const float a = ac_.at(static_cast<size_t>(timesteps_[i]));
    Tensor out(x0.shape());
    for (int64_t k = 0; k < x0.numel(); ++k)
      out.data()[k] = std::sqrt(a) * x0.data()[k] + std::sqrt(1 - a) * noise.data()[k];
    return out;
  }

 private:
  Tensor tcd_step(const Tensor& x0, const Tensor& e, int prev_t, float a_prev, bool last, Rng& rng) const {
    const int ts = static_cast<int>(std::floor((1 - eta_) * static_cast<float>(prev_t)));
    const float a_s = ac_.at(ts), b_s = 1 - a_s;
    Tensor noised(x0.shape());
    for (int64_t k = 0; k < x0.numel(); ++k)
      noised.data()[k] = std::sqrt(a_s) * x0.data()[k] + std::sqrt(b_s) * e.data()[k];
    if (eta_ <= 0 || last) return noised;
    Tensor noise = rng.randn_nhwc(x0.shape());
    const float ca = std::sqrt(a_prev / a_s), cb = std::sqrt(1 - a_prev / a_s) * s_noise_;
    for (int64_t k = 0; k < x0.numel(); ++k) noised.data()[k] = ca * noised.data()[k] + cb * noise.data()[k];
    return noised;
  }

  SchedulerConfig cfg_;
  bool tcd_;
  std::vector<float> ac_;
  float final_ac_ = 1.0f, eta_ = 0.3f, s_noise_ = 1.0f;
  int steps_ = 0;
};

}  // namespace

std::unique_ptr<Sampler> make_lcm_sampler(const SchedulerConfig& cfg, const SamplerOptions& o, bool tcd) {
  return std::make_unique<LcmSampler>(cfg, o, tcd);
}

}  // namespace vg
