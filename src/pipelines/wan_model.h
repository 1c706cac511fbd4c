// A loaded Wan 2.2 TI2V model: the UMT5 text encoder and its tokenizer, the
// Wan transformer, the Wan 2.2 VAE (48 latent channels, 16x in space, 4x in
// time) and the flow scheduler config, from a diffusers folder
// (Wan-AI/Wan2.2-TI2V-5B-Diffusers) or ComfyUI's split files
// (wan2.2_ti2v_5B_fp16.safetensors + umt5_xxl_*.safetensors + wan2.2_vae.safetensors)
// and GGUF transformers.
#pragma once
#include <memory>
#include <string>

#include "models/wan.h"
#include "models/wan_vae.h"
#include "pipelines/family_engine.h"
#include "sampling/schedule.h"
#include "text/t5_encoder.h"
#include "text/t5_tokenizer.h"

namespace vg {

struct WanModel {
  ModelInfo info;
  SchedulerConfig scheduler;
  std::unique_ptr<T5Tokenizer> tokenizer;
  std::unique_ptr<T5Encoder> text_encoder;
  std::unique_ptr<WanTransformer> transformer;
  std::unique_ptr<WanVae> vae;
  WanTransformerConfig config;
  std::string hash_source;  // file whose sha256 is the Model hash
};

std::unique_ptr<WanModel> load_wan_model(const std::string& path, const LoadOptions& opts, bool bf16);
std::unique_ptr<FamilyEngine> make_wan_engine(std::unique_ptr<WanModel> model, const LoadOptions& opts);

}  // namespace vg
