// Helpers shared by the single-file checkpoint loaders (CompVis/LDM for SD
// 1.x/2.x, Stability's SGM layout for SDXL).
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "io/safetensors.h"
#include "io/weights.h"
#include "models/autoencoder_kl.h"

namespace vg {

// Views of slices of stored tensors (e.g. q/k/v thirds of OpenCLIP's fused
// in_proj) under diffusers names: no copy, created once per name.
struct SliceViews {
  std::mutex mu;
  std::map<std::string, TensorInfo> items;
  const TensorInfo* add(const std::string& name, const TensorInfo& whole, int64_t offset, const Shape& shape) {
    std::lock_guard<std::mutex> lock(mu);
    auto& slot = items[name];  // offset and size are whole rows, so block types slice too
    slot = TensorInfo{name, whole.dtype, shape, whole.data + tensor_bytes(whole, offset),
                      tensor_bytes(whole, shape_numel(shape)), whole.ggml_type};
    return &slot;
  }
};

// 1 + the largest N among names "<prefix>N..." (0 when none).
int count_indices(const TensorFile& f, const std::string& prefix);
// The checkpoint's tensors under the diffusers names our models ask for.
WeightStore renamed_store(const std::shared_ptr<TensorFile>& file,
                          std::function<std::string(const std::string&)> to_ldm);
// The tensor, or corrupt_file naming what is missing.
const TensorInfo& need(const TensorFile& f, const std::string& name);
// An OpenCLIP text tower stored under `prefix` (e.g. "cond_stage_model.model.")
// exposed with transformers' CLIPTextModel names; c = width.
WeightStore openclip_store(const std::shared_ptr<TensorFile>& file, const std::string& prefix, int64_t c);
// The VAE's config from the shapes of <prefix>* (LDM names; corrupt_file when
// there is none). BFL's ae.safetensors is the same layout without a prefix.
VaeConfig infer_ldm_vae_config(const TensorFile& f, const std::string& prefix = "first_stage_model.");
// Tokenizer folder for a single file: `given`, beside the file, $VG_TOKENIZER_DIR, the HF cache.
std::string find_tokenizer(const std::string& ckpt, const std::string& given, bool sd2);

}  // namespace vg
