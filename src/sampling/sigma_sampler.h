// Shared schedule logic of the sigma-parameterised samplers (Euler, Heun,
// DPM2, LMS, DPM++ SDE in "VE" latents scaled by 1/sqrt(sigma^2+1); DPM-Solver
// and UniPC in unscaled "VP" latents), following diffusers 0.27.
#pragma once
#include "sampling/sampler.h"

namespace vg {

class SigmaSampler : public Sampler {
 public:
  struct Style {
    bool vp = false;               // DPM-Solver/UniPC latents (no input scaling)
    bool round_timesteps = false;  // timesteps from sigma_to_t are rounded (DPM-Solver/UniPC)
    bool karras_full_range = false;  // Karras/exp/beta span all training sigmas, not the spaced ones
    const char* default_spacing = "linspace";
    const char* default_final = "zero";  // final sigma: zero | sigma_min
  };
  SigmaSampler(const SchedulerConfig& cfg, const SamplerOptions& opt, Style style);

  float init_noise_sigma() const override;
  Tensor scale_model_input(const Tensor& x, size_t i) const override;
  Tensor add_noise(const Tensor& x0, const Tensor& noise, size_t i) const override;

 protected:
  // Fills step_sigmas_ (steps + 1, final last) and step_ts_ (steps).
  void make_schedule(int steps);
  // Expands to one model call per step (the default for one-call samplers).
  void single_call_schedule();
  // x0 from the model output at noise level sigma (Euler-type latents).
  float ve_x0(float x, float m, float sigma) const;

  SchedulerConfig cfg_;
  SamplerOptions opt_;
  Style style_;
  std::string spacing_;
  std::vector<float> train_sigmas_, log_sigmas_;
  std::vector<float> step_sigmas_, step_ts_;
  std::vector<float> model_sigmas_;  // noise level of the model input at each call
  bool comfy_ = false;
};

// Elementwise helpers for sampler updates.
Tensor lincomb(float a, const Tensor& x, float b, const Tensor& y);

}  // namespace vg
