// Noise-schedule configuration (diffusers scheduler_config.json) and the
// training schedule derived from it, computed with torch's float32/double
// semantics so timesteps and sigmas equal diffusers' values.
#pragma once
#include <string>
#include <vector>

namespace vg {

struct SchedulerConfig {
  std::string class_name = "PNDMScheduler";
  int num_train_timesteps = 1000;
  double beta_start = 0.00085, beta_end = 0.012;
  std::string beta_schedule = "scaled_linear";
  std::vector<double> trained_betas;
  std::string prediction_type = "epsilon";  // epsilon | v_prediction | sample
  std::string timestep_spacing = "leading"; // leading | trailing | linspace
  int steps_offset = 0;
  bool rescale_betas_zero_snr = false;
  bool use_karras_sigmas = false;
  bool set_alpha_to_one = false;
  std::string interpolation_type = "linear";
  static SchedulerConfig from_json_file(const std::string& path);
  static SchedulerConfig sd15_default();
};

// float32 alphas_cumprod exactly as diffusers computes them.
std::vector<float> alphas_cumprod(const SchedulerConfig& cfg);

// sigma_t = sqrt((1 - abar) / abar) for every training step (float32).
std::vector<float> training_sigmas(const std::vector<float>& alphas_cumprod);

// The discrete timesteps for `steps` inference steps under cfg's spacing
// (descending), as float values (diffusers' EulerDiscreteScheduler rules).
std::vector<float> spaced_timesteps(const SchedulerConfig& cfg, int steps);

// numpy.interp(x, arange(len(fp)), fp) in double.
double interp_index(double x, const std::vector<float>& fp);

}  // namespace vg
