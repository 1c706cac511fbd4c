// Full-size models (SDXL base, Z-Image-Turbo, Wan 2.2 TI2V-5B) with random f16 weights, for
// memory and speed measurements where the real weights are not at hand.
#pragma once
#include <string>

namespace vg::cli {

// Writes `dir`/{unet,vae,text_encoder,text_encoder_2,scheduler,tokenizer,
// tokenizer_2}/ and model_index.json. Tokenizer files are copied from
// `tokenizer_src` (a diffusers SDXL folder holding tokenizer/ and tokenizer_2/).
void write_synthetic_sdxl(const std::string& dir, const std::string& tokenizer_src, uint32_t seed);

// Z-Image-Turbo at full size: `dir`/z_image_turbo_synthetic.safetensors (the
// transformer, original names) and text_encoder/ (Qwen3-4B), vae/, scheduler/,
// tokenizer/ (copied from `tokenizer_src`/tokenizer) for `--config dir`.
void write_synthetic_zimage(const std::string& dir, const std::string& tokenizer_src, uint32_t seed);

// Wan 2.2 TI2V-5B at full size: `dir`/wan2.2_ti2v_5B_synthetic.safetensors (the
// transformer, original names) and text_encoder/ (UMT5-XXL), vae/ (Wan 2.2),
// scheduler/, tokenizer/ (copied from `tokenizer_src`/tokenizer) for `--config dir`.
void write_synthetic_wan(const std::string& dir, const std::string& tokenizer_src, uint32_t seed);

}  // namespace vg::cli
