// FlowMatchEulerDiscreteScheduler (rectified-flow DiTs: SD3, FLUX, Z-Image,
// Wan), its Heun twin FlowMatchHeunDiscreteScheduler and FlowMatchLCMScheduler: sigmas from 1 down
// (the scheduler's grid, or the pipeline's linspace(1, 1/N, N)), shifted
// statically or by exp(mu) from the image token count; x += (s_next - s) * v.
#include <cmath>

#include "backend/cpu/ops.h"
#include "core/error.h"
#include "sampling/flow_shift.h"
#include "sampling/sampler_registry.h"
#include "sampling/sigma_sampler.h"
#include "sampling/sigma_schedules.h"

namespace vg {

namespace {

class FlowEulerSampler : public Sampler {
 public:
  FlowEulerSampler(const SchedulerConfig& cfg, const SamplerOptions& o, bool heun, bool lcm = false)
      : cfg_(cfg), opt_(o), heun_(heun), lcm_(lcm) {}
  std::string name() const override { return heun_ ? "flow_heun" : lcm_ ? "flow_lcm" : "flow_euler"; }
  int order() const override { return heun_ ? 2 : 1; }

  void set_timesteps(int steps) override {
    schedule_ = opt_.schedule.empty() ? "default" : opt_.schedule;
    step_sigmas_ = schedule_ == "default" ? default_sigmas(steps) : comfy_sigmas(schedule_, steps);
    step_sigmas_.push_back(0.0f);
    sigmas_.clear();
    timesteps_.clear();
    calls_.clear();
    // Heun: one call per step at sigma_i, a second at sigma_{i+1} unless that is 0.
    const int n = cfg_.num_train_timesteps;
    for (int i = 0; i + 1 < static_cast<int>(step_sigmas_.size()); ++i) {
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

  Tensor step(const Tensor& v, size_t i, const Tensor& x, Rng& rng) override {
    const Call c = calls_[i];
    const float dt = step_sigmas_[c.step + 1] - step_sigmas_[c.step];
    if (lcm_) {  // FlowMatchLCMScheduler: x0 = x - s v, re-noised to the next level with a fresh draw
      const float s = step_sigmas_[c.step], sn = step_sigmas_[c.step + 1];
      Tensor x0 = lincomb(1.0f, x, -s, v);
      Tensor noise = rng.randn_nhwc(x.shape());
      scale_inplace(noise, opt_.s_noise);
      return lincomb(1 - sn, x0, sn, noise);
    }
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
  double shift(double t) const { return flow_shifted(cfg_, opt_.image_seq_len, t); }

  // diffusers: the pipeline's grid or linspace over the scheduler's own
  // (statically shifted) sigma range, then shifted.
  std::vector<float> default_sigmas(int steps) const {
    const int n = cfg_.num_train_timesteps;
    const bool dynamic = flow_dynamic(cfg_) && opt_.image_seq_len > 0;
    double t0 = 1.0, t1 = 1.0 / n;
    if (opt_.flow_linear_sigmas) t1 = 1.0 / steps;
    else if (!dynamic) t0 = shift(1.0), t1 = shift(1.0 / n);
    std::vector<float> out;
    for (int i = 0; i < steps; ++i) {
      const double s = steps == 1 ? t0 : t0 + (t1 - t0) * i / (steps - 1);
      out.push_back(static_cast<float>(shift(static_cast<float>(s))));
    }
    stretch_to_terminal(out);
    return out;
  }

  // shift_terminal (Qwen-Image: 0.02): the shifted grid stretched so that its
  // last sigma is exactly the terminal value (float32, as diffusers computes it).
  void stretch_to_terminal(std::vector<float>& s) const {
    const double term = cfg_.get("shift_terminal", 0.0);
    if (!(term > 0) || s.empty()) return;
    const float scale = (1.0f - s.back()) / static_cast<float>(1.0 - term);
    for (float& v : s) v = 1.0f - (1.0f - v) / scale;
  }

  // ComfyUI's schedules on a flow model (ModelSamplingDiscreteFlow): its
  // sigma table is shift(k / N) for k = 1..N and timestep(sigma) = sigma.
  std::vector<float> comfy_sigmas(const std::string& name, int steps) const {
    const int n = cfg_.num_train_timesteps;
    std::vector<double> table(n);
    for (int k = 0; k < n; ++k) table[k] = shift(static_cast<double>(k + 1) / n);
    std::vector<float> out;
    if (name == "normal" || name == "sgm_uniform") {  // linspace(timestep(max), timestep(min)) through sigma()
      const int pts = name == "sgm_uniform" ? steps + 1 : steps;
      const double a = table.back(), b = table.front();
      for (int i = 0; i < steps; ++i) out.push_back(static_cast<float>(shift(pts == 1 ? a : a + (b - a) * i / (pts - 1))));
    } else if (name == "simple") {
      const double ss = static_cast<double>(n) / steps;
      for (int i = 0; i < steps; ++i) out.push_back(static_cast<float>(table[n - 1 - static_cast<int>(i * ss)]));
    } else if (name == "beta") {  // ComfyUI: rint(ppf(1 - i/steps) * (N-1)), repeats dropped
      double last = -1;
      for (int i = 0; i < steps; ++i) {
        const double t = std::rint(beta_ppf(1.0 - static_cast<double>(i) / steps, 0.6, 0.6) * (n - 1));
        if (t != last) out.push_back(static_cast<float>(table[static_cast<int>(t)]));
        last = t;
      }
    } else {
      fail(ErrorCode::kInvalidArgument, "schedule '" + name + "' has no flow-matching form; use default, normal, simple, "
                                        "beta or sgm_uniform on this model");
    }
    return out;
  }

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
  bool heun_, lcm_;
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
std::unique_ptr<Sampler> make_flow_lcm_sampler(const SchedulerConfig& cfg, const SamplerOptions& o) {
  return std::make_unique<FlowEulerSampler>(cfg, o, false, true);
}

}  // namespace vg
