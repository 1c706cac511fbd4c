// diffusers -> CompVis/LDM tensor names for SD 1.x/2.x components.
#pragma once
#include <string>
#include <vector>

namespace vg {

// layers_per_block: resnets per down level; has_up_attn(i): up block i has attentions.
std::string unet_to_ldm(const std::string& name, int layers_per_block, const std::vector<bool>& up_has_attn);
std::string vae_to_ldm(const std::string& name, int num_levels);
// CLIP-L (SD1): under cond_stage_model.transformer.
std::string clip_to_ldm(const std::string& name);

}  // namespace vg
