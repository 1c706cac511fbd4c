// Single-file checkpoints in the original CompVis/LDM layout
// (model.diffusion_model.*, first_stage_model.*, cond_stage_model.*): family
// detection, config inference from tensor shapes, and name mapping to the
// diffusers names our models use (and back, for `visiongen convert`).
#pragma once
#include <memory>
#include <string>

namespace vg {

struct SdModel;

// tokenizer_dir: folder with vocab.json + merges.txt ("" = search the
// Hugging Face cache and the checkpoint's folder).
// config_dir: a diffusers folder of the same architecture whose config.json
// files and tokenizers describe the checkpoint (diffusers' from_single_file
// config=); "" = infer everything from the tensor shapes.
std::unique_ptr<SdModel> load_ldm_checkpoint(const std::string& path, const std::string& tokenizer_dir = "",
                                             bool bf16 = false, const std::string& config_dir = "");
// SDXL base/refiner single files (conditioner.embedders.*, model.diffusion_model.*, first_stage_model.*).
std::unique_ptr<SdModel> load_sgm_checkpoint(const std::shared_ptr<class SafetensorsFile>& file,
                                             const std::string& tokenizer_dir, bool bf16, const std::string& config_dir);

// Writes a diffusers SD folder as one LDM-layout .safetensors file.
void convert_diffusers_to_ldm(const std::string& diffusers_dir, const std::string& out_path);

}  // namespace vg
