// A loaded Z-Image model (Turbo or base): the Qwen3 text encoder and its
// tokenizer, the Z-Image transformer, the 16-channel VAE and the flow
// scheduler config, from a diffusers folder or ComfyUI's split files
// (z_image_turbo_bf16.safetensors + qwen_3_4b.safetensors + ae.safetensors)
// and GGUF transformers / text encoders.
#pragma once
#include <memory>
#include <string>

#include "models/zimage.h"
#include "pipelines/dit_engine.h"
#include "text/qwen_encoder.h"
#include "text/qwen_tokenizer.h"

namespace vg {

struct ZImageModel {
  DitParts parts;
  std::unique_ptr<QwenTokenizer> tokenizer;
  std::unique_ptr<QwenTextEncoder> text_encoder;
  std::unique_ptr<ZImageTransformer> transformer;
  ZImageConfig config;
  bool turbo = true;  // the distilled model (no CFG by default); from the model's name
};

std::unique_ptr<ZImageModel> load_zimage_model(const std::string& path, const LoadOptions& opts, bool bf16);
std::unique_ptr<FamilyEngine> make_zimage_engine(std::unique_ptr<ZImageModel> model, const LoadOptions& opts);

}  // namespace vg
