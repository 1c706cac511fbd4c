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
std::unique_ptr<SdModel> load_sgm_checkpoint(const std::shared_ptr<class TensorFile>& file,
                                             const std::string& tokenizer_dir, bool bf16, const std::string& config_dir);

// Writes a diffusers SD1 folder as one LDM-layout .safetensors file (SDXL
// folders: convert_sdxl_to_sgm).
void convert_diffusers_to_ldm(const std::string& diffusers_dir, const std::string& out_path);
// Writes a diffusers SDXL folder (base or refiner) as one SGM-layout file; the
// component configs ride along as visiongen.<component>_config metadata.
void convert_sdxl_to_sgm(const std::string& diffusers_dir, const std::string& out_path);
// Writes a single-file checkpoint (LDM or SGM layout) as a diffusers folder;
// config_dir / tokenizer_dir as for load_ldm_checkpoint.
void convert_single_file_to_diffusers(const std::string& path, const std::string& out_dir,
                                      const std::string& config_dir = "", const std::string& tokenizer_dir = "");

}  // namespace vg
