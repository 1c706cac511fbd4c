// A loaded Stable Diffusion 3 / 3.5 model: CLIP-L and CLIP-G (penultimate
// states + pooled), optional T5, the MMDiT transformer, the 16-channel VAE
// and the flow-matching scheduler config, from a diffusers folder or a
// Stability single file (sd3.5_medium.safetensors: transformer + VAE, text
// encoders inside or given as ComfyUI-style files).
#pragma once
#include <memory>
#include <string>

#include "models/mmdit.h"
#include "pipelines/dit_components.h"
#include "pipelines/dit_engine.h"

namespace vg {

struct Sd3Model {
  DitParts parts;
  std::unique_ptr<ClipTokenizer> clip_l_tokenizer, clip_g_tokenizer;
  std::unique_ptr<ClipTextModel> clip_l, clip_g;
  std::unique_ptr<T5Tokenizer> t5_tokenizer;  // null with no_t5
  std::unique_ptr<T5Encoder> t5;
  std::unique_ptr<MmditTransformer> transformer;
  MmditConfig config;
};

std::unique_ptr<Sd3Model> load_sd3_model(const std::string& path, const LoadOptions& opts, bool bf16);
std::unique_ptr<FamilyEngine> make_sd3_engine(std::unique_ptr<Sd3Model> model, const LoadOptions& opts);

}  // namespace vg
