// The one place that maps sampler names (ours and diffusers class names) to
// implementations.
#include <cctype>

#include "core/error.h"
#include "sampling/sampler.h"
#include "sampling/sampler_registry.h"

namespace vg {

namespace {

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

std::vector<std::string> sampler_names() { return {"euler", "ddim"}; }

std::unique_ptr<Sampler> make_sampler(const std::string& name, const SchedulerConfig& cfg) {
  const std::string n = lower(name);
  if (n == "euler" || n == "eulerdiscretescheduler" || n == "euler_discrete") return make_euler_sampler(cfg);
  if (n == "ddim" || n == "ddimscheduler") return make_ddim_sampler(cfg, 0.0f);
  fail(ErrorCode::kInvalidArgument, "unknown sampler '" + name + "'; run 'visiongen samplers' to list them");
}

}  // namespace vg
