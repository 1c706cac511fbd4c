// FlowMatchEulerDiscreteScheduler (rectified-flow DiTs: SD3, FLUX, Z-Image,
// Wan): sigmas from 1 to 1/N_train, shifted by `shift` (or by exp(mu) with
// dynamic shifting from the image token count); x += (sigma_next - sigma) * v.
#include <cmath>

#include "sampling/sampler_registry.h"

namespace vg {

namespace {

class FlowEulerSampler : public Sampler {
 public:
  FlowEulerSampler(const SchedulerConfig& cfg, const SamplerOptions& o) : cfg_(cfg), opt_(o) {}
  std::string name() const override { return "flow_euler"; }

  float shifted(float s) const {
    if (cfg_.get("use_dynamic_shifting", false) && opt_.image_seq_len > 0) {
      const double base_len = cfg_.get("base_image_seq_len", 256), max_len = cfg_.get("max_image_seq_len", 4096);
      const double base = cfg_.get("base_shift", 0.5), mx = cfg_.get("max_shift", 1.15);
      const double m = (mx - base) / (max_len - base_len);
      const double mu = opt_.image_seq_len * m + (base - m * base_len);
      return static_cast<float>(std::exp(mu) / (std::exp(mu) + (1 / static_cast<double>(s) - 1)));
    }
    const float shift = cfg_.get("shift", 1.0f);
    return shift * s / (1 + (shift - 1) * s);
  }

  void set_timesteps(int steps) override {
    const int n = cfg_.num_train_timesteps;
    const float smax = shifted(1.0f), smin = shifted(1.0f / static_cast<float>(n));
    const bool dynamic = cfg_.get("use_dynamic_shifting", false) && opt_.image_seq_len > 0;
    sigmas_.clear();
    timesteps_.clear();
    for (int i = 0; i < steps; ++i) {
      // linspace over the (static-)shifted training range, then shift again as diffusers does
      const float t0 = dynamic ? 1.0f : smax, t1 = dynamic ? 1.0f / static_cast<float>(n) : smin;
      const float s = steps == 1 ? t0 : t0 + (t1 - t0) * static_cast<float>(i) / static_cast<float>(steps - 1);
      const float sg = shifted(s);
      sigmas_.push_back(sg);
      timesteps_.push_back(sg * static_cast<float>(n));
    }
    sigmas_.push_back(0.0f);
  }

  Tensor step(const Tensor& v, size_t i, const Tensor& x, Rng&) override {
    const float dt = sigmas_[i + 1] - sigmas_[i];
    Tensor out(x.shape());
    for (int64_t k = 0; k < x.numel(); ++k) out.data()[k] = x.data()[k] + dt * v.data()[k];
    return out;
  }

  Tensor add_noise(const Tensor& x0, const Tensor& noise, size_t i) const override {
    const float s = sigmas_[i];
    Tensor out(x0.shape());
    for (int64_t k = 0; k < x0.numel(); ++k) out.data()[k] = s * noise.data()[k] + (1 - s) * x0.data()[k];
    return out;
  }

 private:
  SchedulerConfig cfg_;
  SamplerOptions opt_;
};

}  // namespace

std::unique_ptr<Sampler> make_flow_euler_sampler(const SchedulerConfig& cfg, const SamplerOptions& o) {
  return std::make_unique<FlowEulerSampler>(cfg, o);
}

}  // namespace vg
