// --unet FILE: a denoiser-only file (GGUF or safetensors) replacing the UNet of
// the loaded model. stable-diffusion.cpp's UNet-only GGUF files keep the
// "model.diffusion_model." prefix, city96's have none, diffusers' UNet
// safetensors use diffusers names: all three are accepted.
#include <memory>
#include <string>

#include "core/error.h"
#include "io/atomic_file.h"
#include "io/tensor_file.h"
#include "lora/layer_registry.h"
#include "pipelines/gguf_convert.h"
#include "pipelines/ldm_common.h"
#include "pipelines/ldm_names.h"
#include "pipelines/sd_model.h"

namespace vg {

void load_unet_file(SdModel& m, const std::string& path, bool bf16) {
  if (is_pickle_path(path)) refuse_pickle(path);
  if (is_directory(path)) {
    std::string base = path;
    while (base.size() > 1 && base.back() == '/') base.pop_back();
    // A whole diffusers model: convert can extract its UNet into one file.
    if (path_exists(base + "/model_index.json"))
      fail(ErrorCode::kModelNotConverted,
           "'" + path + "' is a whole model folder; --unet takes one UNet file. Convert its UNet first: " +
               gguf_convert_command(base, base + "-unet-f16.gguf", "f16", true) + " (or --type q8_0 to quantise)");
    for (const char* f : {"/diffusion_pytorch_model.safetensors", "/diffusion_pytorch_model.fp16.safetensors"})
      if (path_exists(base + f))
        fail(ErrorCode::kInvalidArgument, "--unet takes a file, not the folder '" + path + "'; pass " + base + f);
  }
  auto file = open_tensor_file(path);
  const UNetConfig uc = m.unet->config();
  const int L = uc.layers_per_block.empty() ? 2 : static_cast<int>(uc.layers_per_block.front());
  std::vector<bool> up_attn;
  for (const auto& t : uc.up_block_types) up_attn.push_back(t == "CrossAttnUpBlock2D");
  static const std::string kP = "model.diffusion_model.";
  WeightStore w;
  std::string prefix;  // what the LDM names carry in this file
  if (file->has(kP + "input_blocks.0.0.weight")) prefix = kP;
  else if (file->has("input_blocks.0.0.weight")) prefix = "";
  else if (file->has("conv_in.weight")) prefix = "(diffusers)";
  else
    fail(ErrorCode::kUnsupportedModel, "'" + path + "' holds no Stable Diffusion UNet (no input_blocks.0.0.weight or "
                                           "conv_in.weight); pass a UNet-only GGUF or safetensors file to --unet");
  if (prefix == "(diffusers)") {
    w.add_file(file);
  } else {
    w = renamed_store(file, [L, up_attn, prefix](const std::string& n) {
      std::string l;
      if (n.rfind("add_embedding.linear_1.", 0) == 0) l = kP + "label_emb.0.0." + n.substr(23);  // SDXL
      else if (n.rfind("add_embedding.linear_2.", 0) == 0) l = kP + "label_emb.0.2." + n.substr(23);
      else l = unet_to_ldm(n, L, up_attn);
      return prefix.empty() && l.rfind(kP, 0) == 0 ? l.substr(kP.size()) : l;
    });
  }
  w.set_compute_bf16(bf16);
  m.unet_layers = std::make_shared<LayerRegistry>();  // the old UNet's LoRA slots go with it
  w.set_layer_registry(m.unet_layers);
  m.unet = std::make_unique<UNet>(uc, w);
}

}  // namespace vg
