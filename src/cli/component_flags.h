// The model-component flags `generate` and `serve` share (FLUX/SD3 parts
// given as separate files, a config folder for single files).
#pragma once
#include <CLI/CLI.hpp>

#include "visiongen/visiongen.h"

namespace vg::cli {

// Adds --transformer, --text-encoder(-2/-3), --clip-l, --clip-g, --t5, --no-t5
// and --model-config/--config, each bound to its LoadOptions field. With
// with_vae, also --vae (LoadOptions::vae_file; `generate` has its own --vae).
void add_component_flags(CLI::App* cmd, LoadOptions* lo, bool with_vae);

}  // namespace vg::cli
