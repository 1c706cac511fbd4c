// Noise-schedule configuration (diffusers scheduler_config.json) and the
// training schedule derived from it, computed with torch's float32/double
// semantics so timesteps and sigmas equal diffusers' values.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace vg {

struct SchedulerConfig {
  std::string class_name = "PNDMScheduler";
  int num_train_timesteps = 1000;
  double beta_start = 0.00085, beta_end = 0.012;
  std::string beta_schedule = "scaled_linear";
  std::vector<double> trained_betas;
  std::string prediction_type = "epsilon";  // epsilon | v_prediction | sample | flow_prediction
  int steps_offset = 0;
  bool rescale_betas_zero_snr = false;
  bool set_alpha_to_one = false;
  // Every key of the file (and sampler overrides). Keys whose default
  // differs per scheduler class (timestep_spacing, final_sigmas_type, ...)
  // are read from here with the class default by each sampler.
  nlohmann::json raw = nlohmann::json::object();

  template <class T>
  T get(const char* key, T fallback) const {
    auto it = raw.find(key);
    if (it == raw.end() || it->is_null()) return fallback;
    try {
      return it->get<T>();
    } catch (const nlohmann::json::exception&) {
      return fallback;
    }
  }
  bool has(const char* key) const { return raw.contains(key) && !raw[key].is_null(); }
  // timestep_spacing, or the class default when the file does not say.
  std::string spacing(const char* class_default) const { return get<std::string>("timestep_spacing", class_default); }

  static SchedulerConfig from_json(const nlohmann::json& j, const std::string& origin);
  static SchedulerConfig from_json_file(const std::string& path);
  // Stable Diffusion 1.x/2.x's published scheduler_config.json (no timestep_spacing key).
  static SchedulerConfig sd15_default();
  // SDXL base 1.0's published scheduler_config.json (EulerDiscrete, leading, offset 1).
  static SchedulerConfig sdxl_default();
};

// float32 alphas_cumprod exactly as diffusers computes them.
std::vector<float> alphas_cumprod(const SchedulerConfig& cfg);

// sigma_t = sqrt((1 - abar) / abar) for every training step (float32).
std::vector<float> training_sigmas(const std::vector<float>& alphas_cumprod);

// Timesteps for `steps` steps under `spacing` (descending), as the
// Euler/Heun/LMS/KDPM2/DDIM family computes them (float values).
std::vector<float> spaced_timesteps(const SchedulerConfig& cfg, const std::string& spacing, int steps);

// The DPM-Solver/UniPC/DEIS family's integer timesteps (N+1 grid, last dropped).
std::vector<float> multistep_timesteps(const SchedulerConfig& cfg, const std::string& spacing, int steps);

// numpy.interp(x, arange(len(fp)), fp) in double.
double interp_index(double x, const std::vector<float>& fp);

// diffusers' _sigma_to_t: fractional training timestep for sigma, by linear
// interpolation in log-sigma (log_sigmas ascending with t).
double sigma_to_t(double sigma, const std::vector<float>& log_sigmas);

}  // namespace vg
