// Constructors of the concrete samplers, for the registry in sampler.cpp.
#pragma once
#include <memory>

#include "sampling/sampler.h"

namespace vg {

std::unique_ptr<Sampler> make_euler_sampler(const SchedulerConfig& cfg, const SamplerOptions& o);
std::unique_ptr<Sampler> make_euler_a_sampler(const SchedulerConfig& cfg, const SamplerOptions& o);
std::unique_ptr<Sampler> make_heun_sampler(const SchedulerConfig& cfg, const SamplerOptions& o);
std::unique_ptr<Sampler> make_dpm2_sampler(const SchedulerConfig& cfg, const SamplerOptions& o, bool ancestral);
std::unique_ptr<Sampler> make_lms_sampler(const SchedulerConfig& cfg, const SamplerOptions& o);
std::unique_ptr<Sampler> make_dpmpp_sde_sampler(const SchedulerConfig& cfg, const SamplerOptions& o);
std::unique_ptr<Sampler> make_dpm_solver_sampler(const SchedulerConfig& cfg, const SamplerOptions& o);
std::unique_ptr<Sampler> make_unipc_sampler(const SchedulerConfig& cfg, const SamplerOptions& o);
std::unique_ptr<Sampler> make_ddim_sampler(const SchedulerConfig& cfg, const SamplerOptions& o);
std::unique_ptr<Sampler> make_plms_sampler(const SchedulerConfig& cfg, const SamplerOptions& o);
std::unique_ptr<Sampler> make_lcm_sampler(const SchedulerConfig& cfg, const SamplerOptions& o, bool tcd);
std::unique_ptr<Sampler> make_flow_euler_sampler(const SchedulerConfig& cfg, const SamplerOptions& o);
std::unique_ptr<Sampler> make_flow_heun_sampler(const SchedulerConfig& cfg, const SamplerOptions& o);
std::unique_ptr<Sampler> make_flow_lcm_sampler(const SchedulerConfig& cfg, const SamplerOptions& o);

Tensor lincomb(float a, const Tensor& x, float b, const Tensor& y);

}  // namespace vg
