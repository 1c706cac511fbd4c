#include <cmath>
#include <sstream>

#include "visiongen/params.h"

namespace vg {

const std::vector<ParamField>& param_fields() {
  static const std::vector<ParamField> kFields = {
      {"prompt", "--prompt", "-p", "", "text describing the image"},
      {"negative_prompt", "--negative-prompt", "-n", "Negative prompt", "what the image should not show"},
      {"steps", "--steps", "", "Steps", "number of denoising steps (1-1000)"},
      {"sampler", "--sampler", "", "Sampler", "sampler name (see 'visiongen samplers')"},
      {"scheduler", "--scheduler", "", "Schedule type", "sigma schedule: default, karras, exponential, beta, normal, simple, sgm_uniform, ddim_uniform, ays, leading, trailing, linspace"},
      {"rng", "--rng", "", "RNG", "noise source: cpu (torch CPU generator, diffusers/ComfyUI seeds) or philox (torch CUDA generator, A1111/Forge GPU seeds)"},
      {"eta", "--eta", "", "Eta", "noise amount for DDIM/ancestral/SDE/TCD samplers (-1 = sampler default)"},
      {"s_noise", "--s-noise", "", "s_noise", "multiplier on injected noise (ancestral/SDE samplers)"},
      {"s_churn", "--s-churn", "", "s_churn", "Euler churn: extra noise per step (Karras et al. 2022)"},
      {"cfg_scale", "--cfg-scale", "", "CFG scale", "classifier-free guidance scale; 1 disables the negative pass"},
      {"seed", "--seed", "-s", "Seed", "random seed; -1 picks one. Same seed = same image as diffusers on CPU"},
      {"width", "--width", "-W", "Size", "image width in pixels (0 = model default; multiple of the model's factor)"},
      {"height", "--height", "-H", "Size", "image height in pixels (0 = model default)"},
      {"clip_skip", "--clip-skip", "", "Clip skip", "use the Nth-from-last text encoder layer (A1111: 1 = last, 2 = penultimate)"},
      {"batch_size", "--batch-size", "-b", "", "images per run; image i uses seed+i (1-16)"},
  };
  return kFields;
}

namespace {
Status bad(const std::string& msg) { return Error{ErrorCode::kInvalidArgument, msg}; }
}  // namespace

Status validate_params(const GenerateParams& p) {
  if (p.steps < 1 || p.steps > 1000)
    return bad("steps must be between 1 and 1000 (got " + std::to_string(p.steps) + ")");
  if (!std::isfinite(p.cfg_scale) || p.cfg_scale < 0 || p.cfg_scale > 100)
    return bad("cfg_scale must be between 0 and 100");
  for (auto [name, v] : {std::pair{"width", p.width}, std::pair{"height", p.height}}) {
    if (v < 0) return bad(std::string(name) + " must be positive (got " + std::to_string(v) + ")");
    if (v > 4096)
      return bad(std::string(name) + " " + std::to_string(v) +
                 " is above the 4096-pixel limit; generate smaller and upscale instead");
  }
  if (p.clip_skip < 1 || p.clip_skip > 12)
    return bad("clip_skip must be between 1 (last layer) and 12");
  if (p.batch_size < 1 || p.batch_size > 16) return bad("batch_size must be between 1 and 16");
  if (!std::isfinite(p.eta) || (p.eta < 0 && p.eta != -1.0f) || p.eta > 10)
    return bad("eta must be -1 (sampler default) or between 0 and 10");
  if (!std::isfinite(p.s_noise) || p.s_noise < 0 || p.s_noise > 10) return bad("s_noise must be between 0 and 10");
  if (!std::isfinite(p.s_churn) || p.s_churn < 0 || p.s_churn > 100) return bad("s_churn must be between 0 and 100");
  if (p.rng != "cpu" && p.rng != "philox" && p.rng != "gpu" && p.rng != "nv")
    return bad("rng must be 'cpu' (torch CPU generator) or 'philox' (A1111 GPU seeds), got '" + p.rng + "'");
  if (p.seed < -1) return bad("seed must be -1 (random) or a non-negative integer");
  if (p.prompt.size() > 100000) return bad("prompt is longer than 100000 bytes");
  return Status();
}

std::string format_infotext(const GenerateParams& p, uint64_t seed, int width, int height,
                            const std::string& model_name, const std::string& model_hash) {
  std::ostringstream os;
  os << p.prompt << "\n";
  if (!p.negative_prompt.empty()) os << "Negative prompt: " << p.negative_prompt << "\n";
  os << "Steps: " << p.steps << ", Sampler: " << p.sampler;
  if (!p.scheduler.empty() && p.scheduler != "default") os << ", Schedule type: " << p.scheduler;
  os << ", CFG scale: " << p.cfg_scale
     << ", Seed: " << seed << ", Size: " << width << "x" << height;
  if (!model_hash.empty()) os << ", Model hash: " << model_hash;
  if (!model_name.empty()) os << ", Model: " << model_name;
  if (p.clip_skip > 1) os << ", Clip skip: " << p.clip_skip;
  if (p.eta >= 0) os << ", Eta: " << p.eta;
  if (p.s_noise != 1.0f) os << ", s_noise: " << p.s_noise;
  if (p.s_churn != 0.0f) os << ", s_churn: " << p.s_churn;
  if (p.rng == "philox" || p.rng == "gpu" || p.rng == "nv") os << ", RNG: NV";
  os << ", Version: visiongen";
  return os.str();
}

}  // namespace vg
