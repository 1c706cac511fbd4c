#include "sampling/flow_shift.h"

#include <cmath>

namespace vg {

bool flow_dynamic(const SchedulerConfig& cfg) { return cfg.get("use_dynamic_shifting", false); }

double flow_mu(const SchedulerConfig& cfg, int image_seq_len) {
  const double base_len = cfg.get("base_image_seq_len", 256.0), max_len = cfg.get("max_image_seq_len", 4096.0);
  const double base = cfg.get("base_shift", 0.5), mx = cfg.get("max_shift", 1.15);
  const double m = (mx - base) / (max_len - base_len);
  return image_seq_len * m + (base - m * base_len);
}

double flow_shifted(const SchedulerConfig& cfg, int image_seq_len, double s) {
  if (flow_dynamic(cfg) && image_seq_len > 0) {
    const double mu = flow_mu(cfg, image_seq_len);
    if (cfg.get<std::string>("time_shift_type", "exponential") == "linear") return mu / (mu + (1 / s - 1));
    return std::exp(mu) / (std::exp(mu) + (1 / s - 1));
  }
  // a multistep solver's config (Wan's UniPC) names its shift flow_shift: the
  // flow Euler/Heun/LCM forms run with it, as users switch with shift=flow_shift
  const double shift = cfg.get("shift", cfg.get("flow_shift", 1.0));
  return shift * s / (1 + (shift - 1) * s);
}

void flow_multistep_grid(const SchedulerConfig& cfg, int image_seq_len, int steps, std::vector<float>* sigmas,
                         std::vector<float>* timesteps) {
  const int n = cfg.num_train_timesteps;
  double shift = cfg.get("flow_shift", 1.0);
  if (flow_dynamic(cfg) && image_seq_len > 0) shift = std::exp(flow_mu(cfg, image_seq_len));
  sigmas->clear();
  timesteps->clear();
  for (int i = steps; i >= 1; --i) {
    const double s = -(1.0 / n - 1.0) * i / steps;  // 1 - alpha
    const double sh = shift * s / (1 + (shift - 1) * s);
    sigmas->push_back(static_cast<float>(sh));
    timesteps->push_back(static_cast<float>(static_cast<int64_t>(sh * n)));
  }
  sigmas->push_back(0.0f);
}

void flow_unipc_grid(const SchedulerConfig& cfg, int image_seq_len, int steps, std::vector<float>* sigmas,
                     std::vector<float>* timesteps) {
  const int n = cfg.num_train_timesteps;
  double shift = cfg.get("flow_shift", 1.0);
  if (flow_dynamic(cfg) && image_seq_len > 0) shift = std::exp(flow_mu(cfg, image_seq_len));
  sigmas->clear();
  timesteps->clear();
  for (int i = 0; i < steps; ++i) {
    const double s = 1.0 + (1.0 / n - 1.0) * i / steps;
    double sh = shift * s / (1 + (shift - 1) * s);
    if (i == 0 && sh >= 1.0) sh -= 1e-6;
    sigmas->push_back(static_cast<float>(sh));
    timesteps->push_back(static_cast<float>(static_cast<int64_t>(sh * n)));
  }
  sigmas->push_back(0.0f);
}

}  // namespace vg
