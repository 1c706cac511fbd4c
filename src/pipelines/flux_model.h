// A loaded FLUX.1 model (dev or schnell): CLIP-L (pooled) and T5 text
// encoders with their tokenizers, the FLUX transformer, the 16-channel VAE
// and the flow-matching scheduler config, from a diffusers folder, BFL's
// single files (flux1-dev.safetensors + ae.safetensors) with ComfyUI-style
// clip_l / t5xxl files, or a city96 GGUF transformer.
#pragma once
#include <memory>
#include <string>

#include "models/flux.h"
#include "pipelines/dit_components.h"
#include "pipelines/dit_engine.h"

namespace vg {

struct FluxModel {
  DitParts parts;
  std::unique_ptr<ClipTokenizer> clip_tokenizer;
  std::unique_ptr<ClipTextModel> clip;
  std::unique_ptr<T5Tokenizer> t5_tokenizer;
  std::unique_ptr<T5Encoder> t5;
  std::unique_ptr<FluxTransformer> transformer;
  FluxConfig config;
};

std::unique_ptr<FluxModel> load_flux_model(const std::string& path, const LoadOptions& opts, bool bf16);
std::unique_ptr<FamilyEngine> make_flux_engine(std::unique_ptr<FluxModel> model, const LoadOptions& opts);

}  // namespace vg
