#include "sampling/schedule.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "models/config_util.h"

namespace vg {

SchedulerConfig SchedulerConfig::sd15_default() {
  const nlohmann::json j = {{"_class_name", "PNDMScheduler"}, {"beta_end", 0.012},
                            {"beta_schedule", "scaled_linear"}, {"beta_start", 0.00085},
                            {"num_train_timesteps", 1000}, {"set_alpha_to_one", false},
                            {"skip_prk_steps", true}, {"steps_offset", 1},
                            {"trained_betas", nullptr}, {"clip_sample", false}};
  return from_json(j, "built-in SD1.5 scheduler config");
}

SchedulerConfig SchedulerConfig::sdxl_default() {
  const nlohmann::json j = {{"_class_name", "EulerDiscreteScheduler"}, {"beta_end", 0.012},
                            {"beta_schedule", "scaled_linear"}, {"beta_start", 0.00085},
                            {"interpolation_type", "linear"}, {"num_train_timesteps", 1000},
                            {"prediction_type", "epsilon"}, {"sample_max_value", 1.0},
                            {"set_alpha_to_one", false}, {"skip_prk_steps", true},
                            {"steps_offset", 1}, {"timestep_spacing", "leading"},
                            {"trained_betas", nullptr}, {"use_karras_sigmas", false}};
  return from_json(j, "built-in SDXL scheduler config");
}

SchedulerConfig SchedulerConfig::from_json_file(const std::string& path) {
  return from_json(read_json_file(path, "scheduler"), "'" + path + "'");
}

SchedulerConfig SchedulerConfig::from_json(const nlohmann::json& j, const std::string& origin) {
  if (!j.is_object()) fail(ErrorCode::kCorruptFile, origin + " is not a JSON object");
  SchedulerConfig c;
  c.raw = j;
  try {
    c.class_name = j.value("_class_name", c.class_name);
    c.num_train_timesteps = j.value("num_train_timesteps", c.num_train_timesteps);
    c.beta_start = j.value("beta_start", c.beta_start);
    c.beta_end = j.value("beta_end", c.beta_end);
    c.beta_schedule = j.value("beta_schedule", c.beta_schedule);
    if (j.contains("trained_betas") && j["trained_betas"].is_array())
      c.trained_betas = j["trained_betas"].get<std::vector<double>>();
    c.prediction_type = j.value("prediction_type", c.prediction_type);
    c.steps_offset = j.value("steps_offset", c.steps_offset);
    c.rescale_betas_zero_snr = j.value("rescale_betas_zero_snr", false);
    c.set_alpha_to_one = j.value("set_alpha_to_one", false);
  } catch (const nlohmann::json::exception& e) {
    fail(ErrorCode::kCorruptFile, origin + " has a field of the wrong type: " + e.what());
  }
  if (c.num_train_timesteps < 2 || c.num_train_timesteps > 100000)
    fail(ErrorCode::kCorruptFile, origin + ": num_train_timesteps out of range");
  if (c.prediction_type != "epsilon" && c.prediction_type != "v_prediction" &&
      c.prediction_type != "sample" && c.prediction_type != "flow_prediction")
    fail(ErrorCode::kUnsupportedModel, "prediction_type '" + c.prediction_type + "' is not supported");
  const std::string sp = c.get<std::string>("timestep_spacing", "leading");
  if (sp != "leading" && sp != "trailing" && sp != "linspace")
    fail(ErrorCode::kCorruptFile, origin + ": timestep_spacing '" + sp + "' is unknown");
  return c;
}

namespace {

// torch.linspace(start, end, n, dtype=float32) on the CPU.
std::vector<float> torch_linspace_f32(double start_d, double end_d, int n) {
  std::vector<float> out(n);
  const float start = static_cast<float>(start_d), end = static_cast<float>(end_d);
  const float step = (end - start) / static_cast<float>(n - 1);
  const int halfway = n / 2;
  for (int i = 0; i < n; ++i)
    out[i] = i < halfway ? start + step * static_cast<float>(i)
                         : end - step * static_cast<float>(n - i - 1);
  return out;
}

}  // namespace

std::vector<float> alphas_cumprod(const SchedulerConfig& cfg) {
  const int n = cfg.num_train_timesteps;
  std::vector<float> betas;
  if (!cfg.trained_betas.empty()) {
    for (double b : cfg.trained_betas) betas.push_back(static_cast<float>(b));
  } else if (cfg.beta_schedule == "linear") {
    betas = torch_linspace_f32(cfg.beta_start, cfg.beta_end, n);
  } else if (cfg.beta_schedule == "scaled_linear") {
    betas = torch_linspace_f32(std::sqrt(cfg.beta_start), std::sqrt(cfg.beta_end), n);
    for (auto& b : betas) b = b * b;
  } else if (cfg.beta_schedule == "squaredcos_cap_v2") {
    auto abar = [](double t) { return std::pow(std::cos((t + 0.008) / 1.008 * M_PI / 2), 2); };
    for (int i = 0; i < n; ++i)
      betas.push_back(static_cast<float>(std::min(1 - abar((i + 1.0) / n) / abar(double(i) / n), 0.999)));
  } else {
    fail(ErrorCode::kUnsupportedModel, "beta_schedule '" + cfg.beta_schedule + "' is not supported");
  }
  std::vector<float> out(betas.size());
  double acc = 1.0;  // torch's CPU cumprod accumulates float in double
  for (size_t i = 0; i < betas.size(); ++i) {
    acc *= static_cast<double>(1.0f - betas[i]);
    out[i] = static_cast<float>(acc);
  }
  if (cfg.rescale_betas_zero_snr) {
    // Lin et al. 2023: shift/scale sqrt(abar) so the last step has zero SNR.
    std::vector<double> s(out.size());
    for (size_t i = 0; i < out.size(); ++i) s[i] = std::sqrt(static_cast<double>(out[i]));
    const double s0 = s.front(), sT = s.back();
    for (auto& v : s) v = (v - sT) * s0 / (s0 - sT);
    for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<float>(s[i] * s[i]);
    out.back() = std::max(out.back(), 4.8973451890853435e-08f);  // diffusers' 2**-24 fudge
  }
  return out;
}

std::vector<float> training_sigmas(const std::vector<float>& ac) {
  std::vector<float> s(ac.size());
  for (size_t i = 0; i < ac.size(); ++i) s[i] = std::sqrt((1.0f - ac[i]) / ac[i]);
  return s;
}

std::vector<float> spaced_timesteps(const SchedulerConfig& cfg, const std::string& spacing, int steps) {
  const int n = cfg.num_train_timesteps;
  std::vector<float> ts;
  if (spacing == "linspace") {
    for (int i = steps - 1; i >= 0; --i)
      ts.push_back(static_cast<float>(steps == 1 ? 0.0 : (n - 1) * static_cast<double>(i) / (steps - 1)));
  } else if (spacing == "leading") {
    const int ratio = n / steps;
    for (int i = steps - 1; i >= 0; --i) ts.push_back(static_cast<float>(i * ratio + cfg.steps_offset));
  } else {  // trailing
    const double ratio = static_cast<double>(n) / steps;
    for (double t = n; t > 0 && static_cast<int>(ts.size()) < steps + 1; t -= ratio)
      ts.push_back(static_cast<float>(std::nearbyint(t)) - 1.0f);
    ts.resize(std::min<size_t>(ts.size(), steps));
  }
  return ts;
}

std::vector<float> multistep_timesteps(const SchedulerConfig& cfg, const std::string& spacing, int steps) {
  const int last = cfg.num_train_timesteps;  // lambda_min_clipped = -inf clips nothing
  std::vector<float> ts;
  if (spacing == "linspace") {
    for (int i = steps; i >= 1; --i)
      ts.push_back(static_cast<float>(std::nearbyint((last - 1) * static_cast<double>(i) / steps)));
  } else if (spacing == "leading") {
    const int ratio = last / (steps + 1);
    for (int i = steps; i >= 1; --i) ts.push_back(static_cast<float>(i * ratio + cfg.steps_offset));
  } else {
    const double ratio = static_cast<double>(cfg.num_train_timesteps) / steps;
    for (double t = last; t > 0 && static_cast<int>(ts.size()) < steps; t -= ratio)
      ts.push_back(static_cast<float>(std::nearbyint(t)) - 1.0f);
  }
  return ts;
}

double sigma_to_t(double sigma, const std::vector<float>& log_sigmas) {
  const double ls = std::log(std::max(sigma, 1e-10));
  const int n = static_cast<int>(log_sigmas.size());
  // low_idx = last index whose log_sigma <= ls (cumsum(dists >= 0).argmax), clipped to n-2.
  int low = 0;
  int count = 0, best = 0, best_at = 0;
  for (int i = 0; i < n; ++i) {
    count += (ls - log_sigmas[i] >= 0) ? 1 : 0;
    if (count > best) best = count, best_at = i;
  }
  low = std::min(best_at, n - 2);
  const double lo = log_sigmas[low], hi = log_sigmas[low + 1];
  double w = (lo - ls) / (lo - hi);
  w = std::clamp(w, 0.0, 1.0);
  return (1 - w) * low + w * (low + 1);
}

double interp_index(double x, const std::vector<float>& fp) {
  if (x <= 0) return fp.front();
  const double last = static_cast<double>(fp.size() - 1);
  if (x >= last) return fp.back();
  const size_t i = static_cast<size_t>(std::floor(x));
  if (static_cast<double>(i) == x) return fp[i];
  const double slope = (static_cast<double>(fp[i + 1]) - fp[i]);
  return slope * (x - static_cast<double>(i)) + fp[i];
}

}  // namespace vg
