// One interface for every sampler: the schedule decides the UNet timesteps;
// step() turns the (guided) model output into the next latents. Stochastic
// samplers draw noise only through the generator passed in.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "sampling/schedule.h"
#include "sampling/torch_rng.h"

namespace vg {

class Sampler {
 public:
  virtual ~Sampler() = default;
  virtual void set_timesteps(int steps) = 0;
  // The timestep passed to the UNet at each model call, in order.
  const std::vector<float>& timesteps() const { return timesteps_; }
  const std::vector<float>& sigmas() const { return sigmas_; }  // may be empty
  virtual float init_noise_sigma() const { return 1.0f; }
  virtual Tensor scale_model_input(const Tensor& x, size_t call_index) const { return x; }
  // model_output: guided prediction for model call `call_index`.
  virtual Tensor step(const Tensor& model_output, size_t call_index, const Tensor& sample,
                      TorchCpuGenerator& rng) = 0;
  // Forward-diffuses clean latents to the level of timesteps()[call_index].
  virtual Tensor add_noise(const Tensor& x0, const Tensor& noise, size_t call_index) const = 0;
  virtual std::string name() const = 0;

 protected:
  std::vector<float> timesteps_, sigmas_;
};

// Known names: "euler" (also "EulerDiscreteScheduler"), "ddim" (also "DDIMScheduler", eta 0).
// Throws invalid_argument for unknown names.
std::unique_ptr<Sampler> make_sampler(const std::string& name, const SchedulerConfig& cfg);
std::vector<std::string> sampler_names();

}  // namespace vg
