// DPMSolverMultistepScheduler (diffusers 0.27): DPM-Solver++ (2M/3M),
// SDE-DPM-Solver++ (2M SDE) and DPM-Solver, orders 1-3, midpoint or heun
// second-order update, lower_order_final and final_sigmas_type.
#include <cmath>

#include "core/error.h"
#include "sampling/flow_shift.h"
#include "sampling/sampler_registry.h"
#include "sampling/sigma_sampler.h"

namespace vg {

namespace {

struct AlphaSigma {
  float alpha, sigma, lambda;
};

AlphaSigma vp_of(float s) {
  const float a = 1.0f / std::sqrt(s * s + 1.0f);
  const float sg = s * a;
  return {a, sg, std::log(a) - std::log(sg)};
}
// Rectified flow (use_flow_sigmas): x_t = (1 - s) x0 + s noise.
AlphaSigma flow(float s) { return {1.0f - s, s, std::log(1.0f - s) - std::log(s)}; }

class DpmSolverSampler : public SigmaSampler {
 public:
  DpmSolverSampler(const SchedulerConfig& cfg, const SamplerOptions& o)
      : SigmaSampler(cfg, o, Style{true, true, true, "linspace", "zero"}) {
    algo_ = cfg.get<std::string>("algorithm_type", "dpmsolver++");
    solver_type_ = cfg.get<std::string>("solver_type", "midpoint");
    order_ = cfg.get("solver_order", 2);
    lower_order_final_ = cfg.get("lower_order_final", true);
    euler_at_final_ = cfg.get("euler_at_final", false);
    if (algo_ != "dpmsolver++" && algo_ != "sde-dpmsolver++" && algo_ != "dpmsolver")
      fail(ErrorCode::kUnsupportedModel, "DPM-Solver algorithm_type '" + algo_ + "' is not supported (use dpmsolver++, sde-dpmsolver++ or dpmsolver)");
    if (order_ < 1 || order_ > 3) fail(ErrorCode::kInvalidArgument, "DPM-Solver solver_order must be 1, 2 or 3");
    if (algo_ == "sde-dpmsolver++" && order_ == 3) order_ = 2;  // diffusers has no third-order SDE update
    if (solver_type_ != "midpoint" && solver_type_ != "heun") solver_type_ = "midpoint";
    flow_ = cfg.get("use_flow_sigmas", false);
    if (flow_ && algo_ == "dpmsolver")
      fail(ErrorCode::kInvalidArgument, "DPM-Solver (algorithm_type dpmsolver) has no flow-matching form; use dpmpp_2m");
  }
  std::string name() const override { return algo_ == "sde-dpmsolver++" ? "dpmpp_2m_sde" : "dpmpp_2m"; }

  void set_timesteps(int steps) override {
    if (flow_) {
      flow_multistep_grid(cfg_, opt_.image_seq_len, steps, &sigmas_, &timesteps_);
    } else {
      make_schedule(steps);
      single_call_schedule();
    }
    outputs_.clear();
    lower_order_nums_ = 0;
  }

  Tensor step(const Tensor& m, size_t i, const Tensor& sample, Rng& rng) override {
    const size_t n = timesteps_.size();
    const bool final_zero = cfg_.get<std::string>("final_sigmas_type", "zero") == "zero";
    const bool small = lower_order_final_ && n < 15;
    const bool lower_final = i == n - 1 && (euler_at_final_ || small || final_zero);
    const bool lower_second = i == n - 2 && small;
    outputs_.push_back(convert(m, sample, sigmas_[i]));
    if (outputs_.size() > static_cast<size_t>(order_)) outputs_.erase(outputs_.begin());
    Tensor noise = algo_ == "sde-dpmsolver++" ? rng.randn_nhwc(sample.shape()) : Tensor();
    Tensor out;
    if (order_ == 1 || lower_order_nums_ < 1 || lower_final) out = first_order(i, sample, noise);
    else if (order_ == 2 || lower_order_nums_ < 2 || lower_second) out = second_order(i, sample, noise);
    else out = third_order(i, sample);
    if (lower_order_nums_ < order_) ++lower_order_nums_;
    return out;
  }

  Tensor add_noise(const Tensor& x0, const Tensor& noise, size_t i) const override {
    if (!flow_) return SigmaSampler::add_noise(x0, noise, i);
    return lincomb(sigmas_[i], noise, 1 - sigmas_[i], x0);
  }
  Tensor scale_model_input(const Tensor& x, size_t i) const override { return flow_ ? x : SigmaSampler::scale_model_input(x, i); }
  float init_noise_sigma() const override { return flow_ ? 1.0f : SigmaSampler::init_noise_sigma(); }

 private:
  AlphaSigma vp(float s) const { return flow_ ? flow(s) : vp_of(s); }

  // x0 (DPM-Solver++) or epsilon (DPM-Solver) prediction.
  Tensor convert(const Tensor& m, const Tensor& x, float s) const {
    const AlphaSigma a = vp(s);
    if (flow_) return lincomb(1.0f, x, -a.sigma, m);
    const std::string& p = cfg_.prediction_type;
    const bool plus = algo_ != "dpmsolver";
    if (p == "epsilon") return plus ? lincomb(1.0f / a.alpha, x, -a.sigma / a.alpha, m) : m.clone();
    if (p == "sample") return plus ? m.clone() : lincomb(1.0f / a.sigma, x, -a.alpha / a.sigma, m);
    // v_prediction
    return plus ? lincomb(a.alpha, x, -a.sigma, m) : lincomb(a.sigma, x, a.alpha, m);
  }

  Tensor first_order(size_t i, const Tensor& x, const Tensor& noise) const {
    const AlphaSigma t = vp(sigmas_[i + 1]), s = vp(sigmas_[i]);
    const float h = t.lambda - s.lambda;
    const Tensor& m0 = outputs_.back();
    if (algo_ == "dpmsolver++") return lincomb(t.sigma / s.sigma, x, -(t.alpha * (std::exp(-h) - 1.0f)), m0);
    if (algo_ == "dpmsolver") return lincomb(t.alpha / s.alpha, x, -(t.sigma * (std::exp(h) - 1.0f)), m0);
    Tensor out = lincomb(t.sigma / s.sigma * std::exp(-h), x, t.alpha * (1 - std::exp(-2.0f * h)), m0);
    const float ns = t.sigma * std::sqrt(1.0f - std::exp(-2 * h));
    for (int64_t k = 0; k < out.numel(); ++k) out.data()[k] += ns * noise.data()[k];
    return out;
  }

  Tensor second_order(size_t i, const Tensor& x, const Tensor& noise) const {
    const AlphaSigma t = vp(sigmas_[i + 1]), s0 = vp(sigmas_[i]), s1 = vp(sigmas_[i - 1]);
    const Tensor& m0 = outputs_[outputs_.size() - 1];
    const Tensor& m1 = outputs_[outputs_.size() - 2];
    const float h = t.lambda - s0.lambda, h0 = s0.lambda - s1.lambda, r0 = h0 / h;
    Tensor d1 = lincomb(1.0f / r0, m0, -1.0f / r0, m1);
    const bool mid = solver_type_ == "midpoint";
    float cx, c0, c1, cn = 0;
    if (algo_ == "dpmsolver++") {
      cx = t.sigma / s0.sigma;
      c0 = -(t.alpha * (std::exp(-h) - 1.0f));
      c1 = mid ? -0.5f * (t.alpha * (std::exp(-h) - 1.0f)) : t.alpha * ((std::exp(-h) - 1.0f) / h + 1.0f);
    } else if (algo_ == "dpmsolver") {
      cx = t.alpha / s0.alpha;
      c0 = -(t.sigma * (std::exp(h) - 1.0f));
      c1 = mid ? -0.5f * (t.sigma * (std::exp(h) - 1.0f)) : -(t.sigma * ((std::exp(h) - 1.0f) / h - 1.0f));
    } else {
      cx = t.sigma / s0.sigma * std::exp(-h);
      c0 = t.alpha * (1 - std::exp(-2.0f * h));
      c1 = mid ? 0.5f * (t.alpha * (1 - std::exp(-2.0f * h)))
               : t.alpha * ((1.0f - std::exp(-2.0f * h)) / (-2.0f * h) + 1.0f);
      cn = t.sigma * std::sqrt(1.0f - std::exp(-2 * h));
    }
    Tensor out(x.shape());
    for (int64_t k = 0; k < x.numel(); ++k) {
      float v = cx * x.data()[k] + c0 * m0.data()[k] + c1 * d1.data()[k];
      if (cn != 0) v += cn * noise.data()[k];
      out.data()[k] = v;
    }
    return out;
  }

  Tensor third_order(size_t i, const Tensor& x) const {
    const AlphaSigma t = vp(sigmas_[i + 1]), s0 = vp(sigmas_[i]), s1 = vp(sigmas_[i - 1]), s2 = vp(sigmas_[i - 2]);
    const Tensor& m0 = outputs_[2];
    const Tensor& m1 = outputs_[1];
    const Tensor& m2 = outputs_[0];
    const float h = t.lambda - s0.lambda, h0 = s0.lambda - s1.lambda, h1 = s1.lambda - s2.lambda;
    const float r0 = h0 / h, r1 = h1 / h;
    Tensor out(x.shape());
    const bool plus = algo_ == "dpmsolver++";
    const float e = plus ? std::exp(-h) - 1.0f : std::exp(h) - 1.0f;
    const float cx = plus ? t.sigma / s0.sigma : t.alpha / s0.alpha;
    const float c0 = plus ? -(t.alpha * e) : -(t.sigma * e);
    const float c1 = plus ? t.alpha * (e / h + 1.0f) : -(t.sigma * (e / h - 1.0f));
    const float c2 = plus ? -(t.alpha * ((e + h) / (h * h) - 0.5f)) : -(t.sigma * ((e - h) / (h * h) - 0.5f));
    for (int64_t k = 0; k < x.numel(); ++k) {
      const float a = m0.data()[k], b = m1.data()[k], c = m2.data()[k];
      const float d10 = (1.0f / r0) * (a - b), d11 = (1.0f / r1) * (b - c);
      const float d1 = d10 + (r0 / (r0 + r1)) * (d10 - d11);
      const float d2 = (1.0f / (r0 + r1)) * (d10 - d11);
      out.data()[k] = cx * x.data()[k] + c0 * a + c1 * d1 + c2 * d2;
    }
    return out;
  }

  std::string algo_, solver_type_;
  bool flow_ = false;
  int order_ = 2;
  bool lower_order_final_ = true, euler_at_final_ = false;
  std::vector<Tensor> outputs_;
  int lower_order_nums_ = 0;
};

}  // namespace

std::unique_ptr<Sampler> make_dpm_solver_sampler(const SchedulerConfig& cfg, const SamplerOptions& o) {
  return std::make_unique<DpmSolverSampler>(cfg, o);
}

}  // namespace vg
