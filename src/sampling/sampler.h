// One interface for every sampler: the schedule decides the UNet timesteps;
// step() turns the (guided) model output into the next latents. Stochastic
// samplers draw noise only through the Rng passed in. Samplers follow
// diffusers' per-model-call convention: multi-evaluation methods (Heun,
// DPM2, DPM++ SDE) list one timestep per model call and keep their state
// between calls.
#pragma once
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "sampling/rng.h"
#include "sampling/schedule.h"

namespace vg {

// Knobs a user may set on top of the model's scheduler config.
struct SamplerOptions {
  std::string schedule = "default";  // canonical schedule name (sigma_schedules.h)
  float eta = NAN;                   // NaN = the sampler's default
  float s_noise = 1.0f;              // scale of injected noise (ancestral/SDE samplers)
  float s_churn = 0.0f, s_tmin = 0.0f, s_tmax = INFINITY;  // Euler (Karras et al. churn)
  int image_seq_len = 0;             // flow-matching dynamic shift (0 = static shift)
  // Flow models whose pipeline passes sigmas = linspace(1, 1/N, N) (FLUX,
  // Qwen-Image) instead of the scheduler's own 1 .. 1/N_train grid (SD3).
  bool flow_linear_sigmas = false;
};

class Sampler {
 public:
  virtual ~Sampler() = default;
  virtual void set_timesteps(int steps) = 0;
  // The timestep passed to the UNet at each model call, in order.
  const std::vector<float>& timesteps() const { return timesteps_; }
  const std::vector<float>& sigmas() const { return sigmas_; }  // as diffusers reports them; may be empty
  virtual float init_noise_sigma() const { return 1.0f; }
  virtual Tensor scale_model_input(const Tensor& x, size_t call_index) const { return x; }
  // model_output: guided prediction for model call `call_index`.
  virtual Tensor step(const Tensor& model_output, size_t call_index, const Tensor& sample, Rng& rng) = 0;
  // Forward-diffuses clean latents to the level of timesteps()[call_index].
  virtual Tensor add_noise(const Tensor& x0, const Tensor& noise, size_t call_index) const = 0;
  // Model calls per denoising step (2 for Heun/DPM2/DPM++ SDE): img2img
  // starts at call t_start * order().
  virtual int order() const { return 1; }
  virtual std::string name() const = 0;
  // The schedule actually used ("default", "karras", ...).
  const std::string& schedule() const { return schedule_; }

 protected:
  std::vector<float> timesteps_, sigmas_;
  std::string schedule_ = "default";
};

// What a user asked for, resolved against the registry.
struct SamplerChoice {
  std::string sampler;    // canonical id, e.g. "dpmpp_2m"
  std::string schedule;   // canonical schedule, e.g. "karras"
  bool class_name = false;  // given as a diffusers class: take the config as is (no variant overrides)
  std::vector<std::string> warnings;
};

struct SamplerInfo {
  std::string id, a1111, diffusers;
  std::vector<std::string> aliases;
  bool sigma_schedules, stochastic, has_eta, has_s_noise, has_s_churn;
  std::string note;
};
const std::vector<SamplerInfo>& sampler_table();
std::vector<std::string> sampler_names();

// Accepts our ids, A1111 names ("DPM++ 2M Karras"), ComfyUI names
// ("dpmpp_2m" + "karras") and diffusers class names; "" or "default" for
// the sampler means the model's own scheduler class. Throws invalid_argument
// for unknown names. Options the sampler ignores become warnings.
SamplerChoice resolve_sampler(const std::string& sampler, const std::string& scheduler,
                              const SchedulerConfig& model_cfg, const SamplerOptions& opts = {});

// Rectified-flow scheduler configs (FlowMatch* classes, flow_prediction):
// samplers run in their flow forms on them.
bool is_flow_config(const SchedulerConfig& cfg);

std::unique_ptr<Sampler> make_sampler(const SamplerChoice& choice, const SchedulerConfig& cfg,
                                      const SamplerOptions& opts = {});
// Convenience: resolve + make with default options.
std::unique_ptr<Sampler> make_sampler(const std::string& name, const SchedulerConfig& cfg,
                                      const std::string& scheduler = "default");

}  // namespace vg
