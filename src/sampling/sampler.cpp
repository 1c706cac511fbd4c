// The one place that maps sampler names (ours, A1111's, ComfyUI's and
// diffusers class names) to implementations and config overrides.
#include "sampling/sampler.h"

#include <cctype>

#include "core/error.h"
#include "sampling/sampler_registry.h"
#include "sampling/sigma_schedules.h"

namespace vg {

namespace {

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Config keys a named variant sets on top of the model's scheduler config.
nlohmann::json variant_overrides(const std::string& id) {
  if (id == "dpmpp_2m") return {{"algorithm_type", "dpmsolver++"}, {"solver_order", 2}};
  if (id == "dpmpp_3m") return {{"algorithm_type", "dpmsolver++"}, {"solver_order", 3}};
  if (id == "dpmpp_2m_sde") return {{"algorithm_type", "sde-dpmsolver++"}, {"solver_order", 2}};
  if (id == "dpm_solver") return {{"algorithm_type", "dpmsolver"}, {"solver_order", 2}};
  if (id == "unipc") return {{"solver_type", "bh2"}};
  if (id == "unipc_bh1") return {{"solver_type", "bh1"}};
  return nlohmann::json::object();
}

// The flow-matching form of a sampler on a rectified-flow model ("" = none).
std::string flow_form(const std::string& id) {
  if (id == "euler" || id == "flow_euler") return "flow_euler";
  if (id == "heun" || id == "flow_heun") return "flow_heun";
  if (id == "lcm" || id == "flow_lcm") return "flow_lcm";
  if (id == "dpmpp_2m" || id == "dpmpp_3m" || id == "dpmpp_2m_sde" || id == "unipc" || id == "unipc_bh1") return id;
  return "";
}

}  // namespace

bool is_flow_config(const SchedulerConfig& c) {
  return c.class_name.rfind("FlowMatch", 0) == 0 || c.prediction_type == "flow_prediction" ||
         c.get("use_flow_sigmas", false);
}

const std::vector<SamplerInfo>& sampler_table() {
  // id, A1111 name, diffusers class, aliases (ComfyUI and others),
  // sigma schedules, stochastic, eta, s_noise, s_churn, note
  static const std::vector<SamplerInfo> k = {
      {"euler", "Euler", "EulerDiscreteScheduler", {"euler_discrete", "k_euler"}, true, false, false, false, true, ""},
      {"euler_a", "Euler a", "EulerAncestralDiscreteScheduler", {"euler_ancestral", "euler_ancestral_discrete", "k_euler_a", "k_euler_ancestral"}, true, true, true, true, false, ""},
      {"heun", "Heun", "HeunDiscreteScheduler", {"k_heun"}, true, false, false, false, false, "2 model calls per step"},
      {"dpm2", "DPM2", "KDPM2DiscreteScheduler", {"dpm_2", "k_dpm_2"}, true, false, false, false, false, "2 model calls per step"},
      {"dpm2_a", "DPM2 a", "KDPM2AncestralDiscreteScheduler", {"dpm_2_ancestral", "dpm2_ancestral", "k_dpm_2_a", "k_dpm_2_ancestral"}, true, true, false, true, false, "2 model calls per step"},
      {"lms", "LMS", "LMSDiscreteScheduler", {"k_lms"}, true, false, false, false, false, ""},
      {"dpmpp_2m", "DPM++ 2M", "DPMSolverMultistepScheduler", {"k_dpmpp_2m", "dpm++_2m", "dpmpp2m"}, true, false, false, false, false, ""},
      {"dpmpp_3m", "DPM++ 3M", "", {"k_dpmpp_3m"}, true, false, false, false, false, "DPMSolverMultistepScheduler, solver_order 3"},
      {"dpmpp_2m_sde", "DPM++ 2M SDE", "", {"k_dpmpp_2m_sde", "dpmpp_2m_sde_gpu", "dpm++_2m_sde"}, true, true, false, false, false, "DPMSolverMultistepScheduler, algorithm_type sde-dpmsolver++"},
      {"dpm_solver", "DPM-Solver", "", {"dpmsolver"}, true, false, false, false, false, "DPMSolverMultistepScheduler, algorithm_type dpmsolver"},
      {"dpmpp_sde", "DPM++ SDE", "DPMSolverSDEScheduler", {"k_dpmpp_sde", "dpmpp_sde_gpu", "dpm++_sde"}, true, true, true, true, false, "2 calls per step; Gaussian noise from the seed instead of torchsde's Brownian tree"},
      {"unipc", "UniPC (bh2)", "UniPCMultistepScheduler", {"uni_pc_bh2", "unipc_bh2"}, true, false, false, false, false, ""},
      {"unipc_bh1", "UniPC", "", {"uni_pc"}, true, false, false, false, false, "UniPCMultistepScheduler, solver_type bh1"},
      {"ddim", "DDIM", "DDIMScheduler", {}, false, false, true, true, false, "eta > 0 adds noise"},
      {"plms", "PLMS", "PNDMScheduler", {"pndm", "pndm_plms"}, false, false, false, false, false, "N steps = N+1 model calls"},
      {"lcm", "LCM", "LCMScheduler", {}, false, true, false, true, false, "for LCM-distilled models; at most 50 steps"},
      {"tcd", "TCD", "TCDScheduler", {}, false, true, true, true, false, "eta is TCD's gamma (default 0.3)"},
      {"flow_euler", "Euler (flow)", "FlowMatchEulerDiscreteScheduler", {"flow_match_euler", "flowmatch_euler"}, false, false, false, false, false, "rectified-flow (DiT) models; 'euler' on such a model"},
      {"flow_heun", "Heun (flow)", "FlowMatchHeunDiscreteScheduler", {"flow_match_heun", "flowmatch_heun"}, false, false, false, false, false, "rectified-flow models; 'heun' on such a model; 2 calls per step"},
      {"flow_lcm", "LCM (flow)", "FlowMatchLCMScheduler", {"flow_match_lcm", "flowmatch_lcm"}, false, true, false, true, false, "rectified-flow LCM/few-step models; 'lcm' on such a model; one draw per step"},
  };
  return k;
}

std::vector<std::string> sampler_names() {
  std::vector<std::string> out;
  for (const auto& s : sampler_table()) out.push_back(s.id);
  return out;
}

namespace {

const SamplerInfo* find_sampler(const std::string& name, bool* is_class) {
  const std::string n = lower(name);
  *is_class = false;
  for (const auto& s : sampler_table()) {
    if (!s.diffusers.empty() && lower(s.diffusers) == n) {
      *is_class = true;
      return &s;
    }
  }
  for (const auto& s : sampler_table()) {
    if (s.id == n || lower(s.a1111) == n) return &s;
    for (const auto& a : s.aliases)
      if (a == n) return &s;
  }
  return nullptr;
}

}  // namespace

SamplerChoice resolve_sampler(const std::string& sampler_in, const std::string& scheduler_in,
                              const SchedulerConfig& model_cfg, const SamplerOptions& opts) {
  SamplerChoice c;
  std::string name = sampler_in;
  std::string sched = canonical_schedule(scheduler_in);
  if (sched.empty())
    fail(ErrorCode::kInvalidArgument, "unknown scheduler '" + scheduler_in + "'; run 'visiongen samplers' to list them");
  if (name.empty() || lower(name) == "default") name = model_cfg.class_name;
  bool is_class = false;
  const SamplerInfo* info = find_sampler(name, &is_class);
  if (!info) {
    // A1111 names carry the schedule: "DPM++ 2M Karras", "DPM++ 2M SDE Exponential".
    for (const char* suffix : {" karras", " exponential", " sgm uniform", " uniform", " simple", " normal",
                               " beta", " align your steps", " automatic"}) {
      const std::string l = lower(name), s = suffix;
      if (l.size() > s.size() && l.compare(l.size() - s.size(), s.size(), s) == 0) {
        info = find_sampler(name.substr(0, name.size() - s.size()), &is_class);
        if (info) {
          const std::string from_name = canonical_schedule(s.substr(1));
          if (sched != "default" && sched != from_name)
            c.warnings.push_back("sampler name '" + sampler_in + "' implies scheduler '" + from_name +
                                 "' but scheduler '" + sched + "' was given; using '" + sched + "'");
          else
            sched = from_name;
        }
        break;
      }
    }
  }
  if (!info) fail(ErrorCode::kInvalidArgument, "unknown sampler '" + sampler_in + "'; run 'visiongen samplers' to list them");
  c.sampler = info->id;
  c.class_name = is_class;
  if (is_flow_config(model_cfg)) {
    c.sampler = flow_form(info->id);
    if (c.sampler.empty())
      fail(ErrorCode::kInvalidArgument, "sampler '" + sampler_in + "' has no flow-matching form for this rectified-flow model; use euler, heun, lcm, dpmpp_2m or unipc");
  } else if (info->id.rfind("flow_", 0) == 0) {
    fail(ErrorCode::kInvalidArgument, "sampler '" + sampler_in + "' is for rectified-flow models (FLUX, SD3); pick another for this model");
  }
  if (is_flow_config(model_cfg)) {  // flow schedules as ComfyUI names them (Euler/Heun); solvers keep their own grid
    const bool euler_like = c.sampler == "flow_euler" || c.sampler == "flow_heun" || c.sampler == "flow_lcm";
    const bool known = sched == "normal" || sched == "simple" || sched == "beta" || sched == "sgm_uniform";
    if (sched != "default" && !(euler_like && known)) {
      c.warnings.push_back("scheduler '" + sched + "' has no flow-matching form for sampler '" + c.sampler +
                           "'; using the model's default schedule (flow models take default, normal, simple, beta, sgm_uniform with euler/heun)");
      sched = "default";
    }
    c.schedule = sched;
    return c;
  }
  if (sched != "default" && !is_spacing_schedule(sched) && !info->sigma_schedules) {
    c.warnings.push_back("scheduler '" + sched + "' is not supported by sampler '" + info->id +
                         "' (it has no sigma schedule); using its default timesteps");
    sched = "default";
  }
  const bool own_grid = info->id == "lcm" || info->id == "tcd" || c.sampler == "flow_euler" || c.sampler == "flow_heun";
  if (own_grid && sched != "default") {
    c.warnings.push_back("sampler '" + info->id + "' uses its own timestep grid; scheduler '" + sched + "' is ignored");
    sched = "default";
  }
  if (sched == "ays" && model_cfg.num_train_timesteps != 1000)
    c.warnings.push_back("the AYS noise levels were made for SD1.x; this model may need other levels");
  c.schedule = sched;
  if (!std::isnan(opts.eta) && !info->has_eta)
    c.warnings.push_back("sampler '" + info->id + "' has no eta; eta is ignored");
  if (opts.s_noise != 1.0f && !info->has_s_noise)
    c.warnings.push_back("sampler '" + info->id + "' injects no noise; s_noise is ignored");
  if (opts.s_churn != 0.0f && !info->has_s_churn)
    c.warnings.push_back("s_churn is only used by euler; ignored by '" + info->id + "'");
  return c;
}

std::unique_ptr<Sampler> make_sampler(const SamplerChoice& c, const SchedulerConfig& model_cfg,
                                      const SamplerOptions& opts_in) {
  SchedulerConfig cfg = model_cfg;
  if (!c.class_name) {
    const nlohmann::json over = variant_overrides(c.sampler);
    for (auto it = over.begin(); it != over.end(); ++it) cfg.raw[it.key()] = it.value();
  }
  if (is_flow_config(model_cfg) && c.sampler.rfind("flow_", 0) != 0) {
    // diffusers' flow form of a multistep solver: flow sigmas, velocity
    // prediction, the model's static shift (dynamic models: exp(mu) at run time)
    cfg.raw["use_flow_sigmas"] = true;
    cfg.raw["prediction_type"] = "flow_prediction";
    cfg.prediction_type = "flow_prediction";
    if (!model_cfg.has("flow_shift")) cfg.raw["flow_shift"] = model_cfg.get("shift", 1.0);
  }
  SamplerOptions o = opts_in;
  o.schedule = c.schedule;
  std::unique_ptr<Sampler> s;
  const std::string& id = c.sampler;
  if (id == "euler") s = make_euler_sampler(cfg, o);
  else if (id == "euler_a") s = make_euler_a_sampler(cfg, o);
  else if (id == "heun") s = make_heun_sampler(cfg, o);
  else if (id == "dpm2" || id == "dpm2_a") s = make_dpm2_sampler(cfg, o, id == "dpm2_a");
  else if (id == "lms") s = make_lms_sampler(cfg, o);
  else if (id == "dpmpp_sde") s = make_dpmpp_sde_sampler(cfg, o);
  else if (id == "dpmpp_2m" || id == "dpmpp_3m" || id == "dpmpp_2m_sde" || id == "dpm_solver") s = make_dpm_solver_sampler(cfg, o);
  else if (id == "unipc" || id == "unipc_bh1") s = make_unipc_sampler(cfg, o);
  else if (id == "ddim") s = make_ddim_sampler(cfg, o);
  else if (id == "plms") s = make_plms_sampler(cfg, o);
  else if (id == "lcm" || id == "tcd") s = make_lcm_sampler(cfg, o, id == "tcd");
  else if (id == "flow_euler") s = make_flow_euler_sampler(cfg, o);
  else if (id == "flow_heun") s = make_flow_heun_sampler(cfg, o);
  else if (id == "flow_lcm") s = make_flow_lcm_sampler(cfg, o);
  else fail(ErrorCode::kInternal, "sampler '" + id + "' has no implementation");
  return s;
}

std::unique_ptr<Sampler> make_sampler(const std::string& name, const SchedulerConfig& cfg, const std::string& scheduler) {
  return make_sampler(resolve_sampler(name, scheduler, cfg), cfg);
}

}  // namespace vg
