// What a client (the UI) needs to know about a loaded model: its family, the
// generation controls it takes and the defaults its preset fills.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "visiongen/visiongen.h"

namespace vg::server {

// {family, variant, default_width, default_height, size_multiple,
//  controls: {cfg_scale, cfg_label, negative_prompt, guidance, clip_skip, skip_layers},
//  defaults: {steps, cfg_scale, guidance, width, height, sampler, scheduler}}
nlohmann::json model_details(const Engine& e);

// FLUX and SD3: the diffusion transformers, whose A1111 requests take the
// model's preset for the fields a client leaves out.
bool is_dit_family(const std::string& family);

}  // namespace vg::server
