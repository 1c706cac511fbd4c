// Noise-level schedules that replace a sampler's default timestep spacing:
// diffusers' Karras / exponential / beta conversions and ComfyUI's
// normal / simple / sgm_uniform / ddim_uniform / AYS. Each returns the
// `steps` sigmas the model is evaluated at, descending, without the final one.
#pragma once
#include <string>
#include <vector>

namespace vg {

// Canonical schedule names, in the order `visiongen samplers` lists them.
const std::vector<std::string>& schedule_names();
// Maps user spellings (A1111 "Karras", "SGM Uniform", "Align Your Steps", ...)
// to a canonical name; "" when unknown.
std::string canonical_schedule(const std::string& name);
// Schedules that only change the timestep spacing (any sampler can use them).
bool is_spacing_schedule(const std::string& schedule);

// EDM (Karras et al. 2022) rho = 7 between sigma_max and sigma_min.
std::vector<double> karras_sigmas(double sigma_min, double sigma_max, int steps, double rho = 7.0);
std::vector<double> exponential_sigmas(double sigma_min, double sigma_max, int steps);
// "Beta Sampling is All You Need": sigma_min + ppf(1 - i/(n-1)) * (max - min).
std::vector<double> beta_sigmas(double sigma_min, double sigma_max, int steps, double a = 0.6, double b = 0.6);
// Inverse of the regularized incomplete beta function I_x(a, b).
double beta_ppf(double p, double a, double b);

// ComfyUI schedules over the model's training sigmas (ascending with t).
std::vector<double> comfy_schedule(const std::string& name, const std::vector<float>& train_sigmas, int steps);

}  // namespace vg
