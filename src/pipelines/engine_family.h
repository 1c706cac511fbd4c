// Internal: the preset family of a loaded vg::Engine, for front ends that
// show per-family controls (the server's model details).
#pragma once
#include <string>

#include "visiongen/visiongen.h"

namespace vg {

// The family name presets use (data/presets/*.yaml): "stable-diffusion-1-x",
// "stable-diffusion-2-x", "sdxl", "flux-dev" (distilled guidance),
// "flux-schnell", "sd3"; "" for an engine that is gone.
std::string engine_preset_family(const Engine& e);

}  // namespace vg
