// Constructors of the concrete samplers, for the registry in sampler.cpp.
#pragma once
#include <memory>

#include "sampling/sampler.h"

namespace vg {

std::unique_ptr<Sampler> make_euler_sampler(const SchedulerConfig& cfg);
std::unique_ptr<Sampler> make_ddim_sampler(const SchedulerConfig& cfg, float eta);

}  // namespace vg
