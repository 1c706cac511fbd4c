// A full-size SDXL base diffusers folder with random f16 weights, for
// memory and speed measurements where the real weights are not at hand.
#pragma once
#include <string>

namespace vg::cli {

// Writes `dir`/{unet,vae,text_encoder,text_encoder_2,scheduler,tokenizer,
// tokenizer_2}/ and model_index.json. Tokenizer files are copied from
// `tokenizer_src` (a diffusers SDXL folder holding tokenizer/ and tokenizer_2/).
void write_synthetic_sdxl(const std::string& dir, const std::string& tokenizer_src, uint32_t seed);

}  // namespace vg::cli
