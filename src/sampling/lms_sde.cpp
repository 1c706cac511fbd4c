// LMSDiscreteScheduler (linear multistep, order 4 with exactly integrated
// Lagrange coefficients) and DPM++ SDE (k-diffusion's sample_dpmpp_sde,
// r = 1/2, as diffusers' DPMSolverSDEScheduler: two model calls per step).
// DPM++ SDE draws its noise from the seeded generator, not torchsde's
// Brownian tree, so its images differ from diffusers' for the same seed.
#include <cmath>
#include <deque>

#include "sampling/sampler_registry.h"
#include "sampling/sigma_sampler.h"

namespace vg {

namespace {

class LmsSampler : public SigmaSampler {
 public:
  LmsSampler(const SchedulerConfig& cfg, const SamplerOptions& o) : SigmaSampler(cfg, o, Style{}) {}
  std::string name() const override { return "lms"; }
  void set_timesteps(int steps) override {
    make_schedule(steps);
    single_call_schedule();
    derivatives_.clear();
  }

  // Integral over [sigma_t, sigma_{t+1}] of the Lagrange basis polynomial
  // for node `current` among nodes sigma_{t-k}, k < order (degree <= 3, so
  // 4-point Gauss-Legendre is exact).
  double coefficient(int order, int t, int current) const {
    static const double xg[4] = {-0.8611363115940526, -0.3399810435848563, 0.3399810435848563, 0.8611363115940526};
    static const double wg[4] = {0.3478548451374538, 0.6521451548625461, 0.6521451548625461, 0.3478548451374538};
    const double a = sigmas_[t], b = sigmas_[t + 1];
    double sum = 0;
    for (int g = 0; g < 4; ++g) {
      const double tau = (b - a) / 2 * xg[g] + (a + b) / 2;
      double prod = 1;
      for (int k = 0; k < order; ++k) {
        if (k == current) continue;
        prod *= (tau - sigmas_[t - k]) / (static_cast<double>(sigmas_[t - current]) - sigmas_[t - k]);
      }
      sum += wg[g] * prod;
    }
    return sum * (b - a) / 2;
  }

  Tensor step(const Tensor& m, size_t i, const Tensor& sample, Rng&) override {
    const float sigma = sigmas_[i];
    Tensor d(sample.shape());
    for (int64_t k = 0; k < sample.numel(); ++k) {
      const float xs = sample.data()[k];
      d.data()[k] = (xs - ve_x0(xs, m.data()[k], sigma)) / sigma;
    }
    derivatives_.push_back(d);
    if (derivatives_.size() > 4) derivatives_.pop_front();
    const int order = std::min(static_cast<int>(i) + 1, 4);
    Tensor out = sample.clone();
    for (int c = 0; c < order; ++c) {
      const float coeff = static_cast<float>(coefficient(order, static_cast<int>(i), c));
      const Tensor& dc = derivatives_[derivatives_.size() - 1 - c];
      for (int64_t k = 0; k < out.numel(); ++k) out.data()[k] += coeff * dc.data()[k];
    }
    return out;
  }

 private:
  std::deque<Tensor> derivatives_;
};

class DpmppSdeSampler : public SigmaSampler {
 public:
  DpmppSdeSampler(const SchedulerConfig& cfg, const SamplerOptions& o) : SigmaSampler(cfg, o, Style{}) {}
  std::string name() const override { return "dpmpp_sde"; }
  int order() const override { return 2; }

  void set_timesteps(int steps) override {
    make_schedule(steps);
    const auto& s = step_sigmas_;
    sigmas_ = s;
    timesteps_.clear();
    model_sigmas_.clear();
    for (size_t i = 0; i + 1 < s.size(); ++i) {
      timesteps_.push_back(step_ts_[i]);
      model_sigmas_.push_back(s[i]);
      if (s[i + 1] > 0) {
        const float mid = std::sqrt(s[i] * s[i + 1]);  // sigma at t + h/2 in log space
        timesteps_.push_back(static_cast<float>(sigma_to_t(mid, log_sigmas_)));
        model_sigmas_.push_back(mid);
      }
    }
    step_ = 0;
    first_ = Tensor();
  }

  Tensor step(const Tensor& m, size_t i, const Tensor& sample, Rng& rng) override {
    const float eta = std::isnan(opt_.eta) ? 1.0f : opt_.eta;
    const double s = sigmas_[step_], sn = sigmas_[step_ + 1];
    Tensor x0(sample.shape());
    for (int64_t k = 0; k < sample.numel(); ++k)
      x0.data()[k] = ve_x0(sample.data()[k], m.data()[k], model_sigmas_[i]);
    if (sn == 0) {  // final Euler step to sigma 0 gives the prediction
      ++step_;
      return x0;
    }
    auto ancestral = [&](double from, double to, double* down, double* up) {
      *up = std::min(to, eta * std::sqrt(to * to * (from * from - to * to) / (from * from)));
      *down = std::sqrt(to * to - *up * *up);
    };
    const double t = -std::log(s), tn = -std::log(sn), h = tn - t, smid = std::exp(-(t + h / 2));
    double down, up;
    if (first_.empty()) {
      first_ = sample;
      ancestral(s, smid, &down, &up);
      Tensor out = lincomb(static_cast<float>(down / s), sample, static_cast<float>(-std::expm1(t + std::log(down))), x0);
      return add_noise_scaled(out, rng, static_cast<float>(opt_.s_noise * up));
    }
    ancestral(s, sn, &down, &up);
    // r = 1/2 makes fac = 1: the update uses only the midpoint's prediction.
    Tensor out = lincomb(static_cast<float>(down / s), first_, static_cast<float>(-std::expm1(t + std::log(down))), x0);
    first_ = Tensor();
    ++step_;
    return add_noise_scaled(out, rng, static_cast<float>(opt_.s_noise * up));
  }

 private:
  static Tensor add_noise_scaled(Tensor x, Rng& rng, float scale) {
    Tensor n = rng.randn_nhwc(x.shape());
    for (int64_t k = 0; k < x.numel(); ++k) x.data()[k] += scale * n.data()[k];
    return x;
  }
  size_t step_ = 0;
  Tensor first_;
};

}  // namespace

std::unique_ptr<Sampler> make_lms_sampler(const SchedulerConfig& cfg, const SamplerOptions& o) {
  return std::make_unique<LmsSampler>(cfg, o);
}
std::unique_ptr<Sampler> make_dpmpp_sde_sampler(const SchedulerConfig& cfg, const SamplerOptions& o) {
  return std::make_unique<DpmppSdeSampler>(cfg, o);
}

}  // namespace vg
