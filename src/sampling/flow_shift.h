// Resolution-dependent shift of rectified-flow schedules (diffusers'
// FlowMatchEulerDiscreteScheduler): mu from the image token count, and the
// exponential / linear time shift it drives, or the static `shift`.
#pragma once
#include "sampling/schedule.h"

namespace vg {

// True when the config shifts by the image size (use_dynamic_shifting).
bool flow_dynamic(const SchedulerConfig& cfg);
// mu = linear map of the token count from [base_image_seq_len, max_image_seq_len]
// onto [base_shift, max_shift].
double flow_mu(const SchedulerConfig& cfg, int image_seq_len);
// The shifted sigma: with dynamic shifting time_shift(mu, sigma)
// (exponential: e^mu / (e^mu + 1/s - 1); linear: mu / (mu + 1/s - 1)),
// else shift*s / (1 + (shift-1)*s).
double flow_shifted(const SchedulerConfig& cfg, int image_seq_len, double sigma);

// The multistep solvers' use_flow_sigmas grid (DPMSolverMultistep, UniPC):
// 1 - linspace(1, 1/N_train, N+1) shifted by flow_shift (exp(mu) with dynamic
// shifting), reversed, the 0 dropped; integer timesteps floor(sigma * N_train);
// final sigma 0.
void flow_multistep_grid(const SchedulerConfig& cfg, int image_seq_len, int steps, std::vector<float>* sigmas,
                         std::vector<float>* timesteps);
// UniPC's use_flow_sigmas grid (diffusers 0.40): linspace(1, 1/N_train, N+1)
// without its last value, shifted the same way, the first sigma (1) lowered
// by 1e-6; timesteps floor(sigma * N_train); final sigma 0.
void flow_unipc_grid(const SchedulerConfig& cfg, int image_seq_len, int steps, std::vector<float>* sigmas,
                     std::vector<float>* timesteps);

}  // namespace vg
