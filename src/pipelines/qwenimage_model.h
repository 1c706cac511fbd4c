// A loaded Qwen-Image model: the Qwen2.5-VL language model as text encoder
// with its tokenizer, the Qwen-Image MMDiT, the Wan-style VAE (one frame,
// latents normalised by its mean/std) and the dynamic-shift flow scheduler,
// from a diffusers folder or ComfyUI's split files (qwen_image_*.safetensors +
// qwen_2.5_vl_7b*.safetensors + qwen_image_vae.safetensors) and GGUFs.
#pragma once
#include <memory>
#include <string>

#include "models/qwenimage.h"
#include "pipelines/dit_engine.h"
#include "text/qwen_encoder.h"
#include "text/qwen_tokenizer.h"

namespace vg {

struct QwenImageModel {
  DitParts parts;
  std::unique_ptr<QwenTokenizer> tokenizer;
  std::unique_ptr<QwenTextEncoder> text_encoder;
  std::unique_ptr<QwenImageTransformer> transformer;
  QwenImageConfig config;
};

std::unique_ptr<QwenImageModel> load_qwenimage_model(const std::string& path, const LoadOptions& opts, bool bf16);
std::unique_ptr<FamilyEngine> make_qwenimage_engine(std::unique_ptr<QwenImageModel> model, const LoadOptions& opts);

}  // namespace vg
