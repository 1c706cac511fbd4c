#include "server/model_details.h"

#include "core/error.h"
#include "registry/presets.h"

namespace vg::server {

bool is_dit_family(const std::string& family) {
  return family == "flux" || family == "sd3" || family == "zimage" || family == "qwenimage" || family == "wan";
}

nlohmann::json model_details(const Engine& e) {
  const ModelInfo& mi = e.info();
  std::string variant = e.preset_family();
  if (variant.empty())
    variant = mi.family == "sd1"   ? "stable-diffusion-1-x"
              : mi.family == "sd2" ? "stable-diffusion-2-x"
                                   : mi.family;
  const bool flux = mi.family == "flux", sd3 = mi.family == "sd3", qwen = mi.family == "qwenimage";
  // FLUX's and Qwen-Image's cfg_scale is diffusers' true_cfg_scale: a negative
  // pass runs only above 1 and with a negative prompt; dev's guidance is
  // distilled. Z-Image's CFG runs above 1 (diffusers' g = cfg_scale - 1).
  nlohmann::json controls = {{"cfg_scale", true},
                             {"cfg_label", flux || qwen ? "true CFG" : "CFG scale"},
                             {"negative_prompt", true},
                             {"negative_prompt_needs_cfg", flux || qwen},
                             {"guidance", variant == "flux-dev"},
                             {"clip_skip", !is_dit_family(mi.family) || sd3},
                             {"skip_layers", sd3},
                             {"video", mi.video}};
  GenerateParams p;
  auto preset = guard([&] { return apply_preset(variant, "normal", mi.video ? "text_to_video" : "text_to_image", {}, &p); });
  (void)preset;  // no preset: the library's defaults stand
  nlohmann::json defaults = {{"steps", p.steps},
                             {"cfg_scale", p.cfg_scale},
                             {"width", p.width ? p.width : mi.default_width},
                             {"height", p.height ? p.height : mi.default_height},
                             {"sampler", p.sampler},
                             {"scheduler", p.scheduler}};
  if (variant == "flux-dev") defaults["guidance"] = p.guidance >= 0 ? p.guidance : 3.5f;
  if (sd3) defaults["skip_layer_scale"] = p.skip_layer_scale;
  if (mi.video) {
    defaults["frames"] = p.frames > 0 ? p.frames : mi.default_frames;
    defaults["fps"] = p.fps > 0 ? p.fps : 24.0f;
  }
  return {{"family", mi.family},
          {"variant", variant},
          {"default_width", mi.default_width},
          {"default_height", mi.default_height},
          {"size_multiple", mi.size_multiple},
          {"video", mi.video},
          {"controls", controls},
          {"defaults", defaults}};
}

}  // namespace vg::server
