#include "sampling/sigma_sampler.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "sampling/sigma_schedules.h"

namespace vg {

Tensor lincomb(float a, const Tensor& x, float b, const Tensor& y) {
  Tensor out(x.shape());
  const float* px = x.data();
  const float* py = y.data();
  float* o = out.data();
  for (int64_t k = 0; k < x.numel(); ++k) o[k] = a * px[k] + b * py[k];
  return out;
}

SigmaSampler::SigmaSampler(const SchedulerConfig& cfg, const SamplerOptions& opt, Style style)
    : cfg_(cfg), opt_(opt), style_(style), train_sigmas_(training_sigmas(alphas_cumprod(cfg))) {
  for (float s : train_sigmas_) log_sigmas_.push_back(std::log(s));
}

void SigmaSampler::make_schedule(int steps) {
  std::string sched = opt_.schedule.empty() ? "default" : opt_.schedule;
  spacing_ = cfg_.spacing(style_.default_spacing);
  if (is_spacing_schedule(sched)) spacing_ = sched;
  std::vector<float> ts = style_.vp ? multistep_timesteps(cfg_, spacing_, steps) : spaced_timesteps(cfg_, spacing_, steps);
  std::vector<double> sig;
  for (float t : ts) sig.push_back(interp_index(t, train_sigmas_));
  if (sched == "default") {
    if (cfg_.get("use_karras_sigmas", false)) sched = "karras";
    else if (cfg_.get("use_exponential_sigmas", false)) sched = "exponential";
    else if (cfg_.get("use_beta_sigmas", false)) sched = "beta";
  }
  comfy_ = false;
  if (sched == "karras" || sched == "exponential" || sched == "beta") {
    double smin = style_.karras_full_range ? train_sigmas_.front() : sig.back();
    double smax = style_.karras_full_range ? train_sigmas_.back() : sig.front();
    smin = cfg_.get("sigma_min", smin);
    smax = cfg_.get("sigma_max", smax);
    sig = sched == "karras" ? karras_sigmas(smin, smax, steps)
          : sched == "exponential" ? exponential_sigmas(smin, smax, steps)
                                   : beta_sigmas(smin, smax, steps, cfg_.get("beta_sigmas_alpha", 0.6),
                                                 cfg_.get("beta_sigmas_beta", 0.6));
  } else if (sched != "default" && !is_spacing_schedule(sched)) {
    sig = comfy_schedule(sched, train_sigmas_, steps);
    comfy_ = true;
  }
  if (sched != "default" && !is_spacing_schedule(sched)) {
    ts.clear();
    for (double s : sig) {
      const double t = sigma_to_t(s, log_sigmas_);
      ts.push_back(static_cast<float>(style_.round_timesteps ? std::nearbyint(t) : t));
    }
  }
  schedule_ = sched;
  const std::string final_type = cfg_.get<std::string>("final_sigmas_type", style_.default_final);
  step_sigmas_.clear();
  for (double s : sig) step_sigmas_.push_back(static_cast<float>(s));
  if (final_type == "sigma_min") step_sigmas_.push_back(train_sigmas_.front());
  else if (final_type == "zero") step_sigmas_.push_back(0.0f);
  else fail(ErrorCode::kInvalidArgument, "final_sigmas_type '" + final_type + "' is unknown (use zero or sigma_min)");
  step_ts_ = ts;
}

void SigmaSampler::single_call_schedule() {
  timesteps_ = step_ts_;
  sigmas_ = step_sigmas_;
  model_sigmas_.assign(step_sigmas_.begin(), step_sigmas_.end() - 1);
}

float SigmaSampler::init_noise_sigma() const {
  if (style_.vp) return 1.0f;
  const float mx = *std::max_element(sigmas_.begin(), sigmas_.end());
  if (comfy_ || spacing_ == "linspace" || spacing_ == "trailing") return mx;
  return std::sqrt(mx * mx + 1.0f);
}

Tensor SigmaSampler::scale_model_input(const Tensor& x, size_t i) const {
  if (style_.vp) return x;
  const float s = model_sigmas_.at(i);
  const float denom = std::sqrt(s * s + 1.0f);
  Tensor out(x.shape());
  for (int64_t k = 0; k < x.numel(); ++k) out.data()[k] = x.data()[k] / denom;
  return out;
}

Tensor SigmaSampler::add_noise(const Tensor& x0, const Tensor& noise, size_t i) const {
  const float s = model_sigmas_.at(i);
  if (!style_.vp) return lincomb(1.0f, x0, s, noise);
  const float alpha = 1.0f / std::sqrt(s * s + 1.0f);
  return lincomb(alpha, x0, s * alpha, noise);
}

float SigmaSampler::ve_x0(float x, float m, float s) const {
  const std::string& p = cfg_.prediction_type;
  if (p == "v_prediction") return m * (-s / std::sqrt(s * s + 1.0f)) + x / (s * s + 1.0f);
  if (p == "sample") return m;
  return x - s * m;
}

}  // namespace vg
