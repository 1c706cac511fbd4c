// A loaded Stable Diffusion 1.x/2.x model: tokenizer, text encoder, UNet,
// VAE and the scheduler config, from a diffusers folder or an LDM checkpoint.
#pragma once
#include <functional>
#include <memory>
#include <string>

#include "models/autoencoder_kl.h"
#include "models/unet.h"
#include "sampling/schedule.h"
#include "text/clip_text_model.h"
#include "text/clip_tokenizer.h"
#include "visiongen/visiongen.h"

namespace vg {

class LayerRegistry;

struct SdModel {
  ModelInfo info;
  std::unique_ptr<ClipTokenizer> tokenizer;
  std::unique_ptr<ClipTextModel> text_encoder;
  std::unique_ptr<UNet> unet;
  std::unique_ptr<AutoencoderKL> vae;
  SchedulerConfig scheduler;
  std::string hash_source;  // file whose sha256 is the A1111 "Model hash"
  // LoRA patch slots of the UNet's and text encoder's layers, and the UNet's
  // diffusers -> SGM module names (kohya SDXL-style keys).
  std::shared_ptr<LayerRegistry> unet_layers, text_encoder_layers;
  std::function<std::string(const std::string&)> unet_sgm_name;
};

// The SGM/LDM module name ("input_blocks.4.1.proj_in") of a diffusers UNet
// module name, for this UNet config.
std::function<std::string(const std::string&)> unet_sgm_namer(const UNetConfig& cfg);

// bf16: layers keep bf16 weights and compute in bf16 (float32 between layers).
std::unique_ptr<SdModel> load_sd_model(const std::string& path, const std::string& tokenizer_dir = "", bool bf16 = false);
std::unique_ptr<SdModel> load_diffusers_folder(const std::string& dir, bool bf16 = false);

// First 10 hex chars of the file's sha256 (A1111 "Model hash").
std::string model_hash(const std::string& path);

}  // namespace vg
