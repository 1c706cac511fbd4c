// A loaded Stable Diffusion model (1.x/2.x, or XL with its second text
// encoder): tokenizers, text encoders, UNet, VAE and the scheduler config,
// from a diffusers folder or a single-file (LDM / SGM) checkpoint.
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
  std::unique_ptr<ClipTokenizer> tokenizer;        // null for the SDXL refiner
  std::unique_ptr<ClipTextModel> text_encoder;     // null for the SDXL refiner
  std::unique_ptr<ClipTokenizer> tokenizer_2;      // SDXL: OpenCLIP bigG (pads with "!")
  std::unique_ptr<ClipTextModel> text_encoder_2;   // SDXL: with text_projection
  // SDXL pipeline options (model_index.json): an absent negative prompt is
  // all zeros; the refiner conditions on aesthetic scores instead of the target size.
  bool force_zeros_for_empty_prompt = false;
  bool requires_aesthetics_score = false;
  std::unique_ptr<UNet> unet;
  std::unique_ptr<AutoencoderKL> vae;
  SchedulerConfig scheduler;
  std::string hash_source;  // file whose sha256 is the A1111 "Model hash"
  // LoRA patch slots of the UNet's and text encoder's layers, and the UNet's
  // diffusers -> SGM module names (kohya SDXL-style keys).
  // LoRA patch slots of each component's layers (lora/layer_registry.h).
  std::shared_ptr<LayerRegistry> unet_layers, text_encoder_layers, text_encoder_2_layers;
  std::function<std::string(const std::string&)> unet_sgm_name;
};

// Replaces m.unet (same architecture) with the UNet in `path`: a UNet-only
// GGUF or safetensors file, LDM names with or without "model.diffusion_model."
// or diffusers names (--unet).
void load_unet_file(SdModel& m, const std::string& path, bool bf16);

// The SGM/LDM module name ("input_blocks.4.1.proj_in") of a diffusers UNet
// module name, for this UNet config.
std::function<std::string(const std::string&)> unet_sgm_namer(const UNetConfig& cfg);

// bf16: layers keep bf16 weights and compute in bf16 (float32 between layers).
std::unique_ptr<SdModel> load_sd_model(const std::string& path, const std::string& tokenizer_dir = "", bool bf16 = false,
                                       const std::string& config_dir = "");
std::unique_ptr<SdModel> load_diffusers_folder(const std::string& dir, bool bf16 = false);
// SDXL base / refiner / inpaint folders (StableDiffusionXL*Pipeline).
std::unique_ptr<SdModel> load_sdxl_folder(const std::string& dir, bool bf16 = false);
// Sets info (family, sizes) from the loaded parts.
void fill_model_info(SdModel& m, const std::string& path, const std::string& name);
// Parts every diffusers SD-family folder loads the same way: a CLIP text
// encoder component (lazy, registered for LoRA), and the UNet, VAE,
// scheduler (else `fallback`), hash source and info of the folder.
std::unique_ptr<ClipTextModel> load_folder_text_encoder(const std::string& dir, const char* component, bool bf16,
                                                        const std::shared_ptr<LayerRegistry>& layers);
void load_folder_denoiser(SdModel& m, const std::string& dir, bool bf16, const SchedulerConfig& fallback);

// First 10 hex chars of the file's sha256 (A1111 "Model hash").
std::string model_hash(const std::string& path);

}  // namespace vg
