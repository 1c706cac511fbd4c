// Z-Image transformer weight layouts: the original names (Tongyi's and
// ComfyUI's z_image_turbo_bf16.safetensors, GGUF conversions of it, with or
// without `model.diffusion_model.`) that ZImageTransformer reads, and
// diffusers' ZImageTransformer2DModel names, exposed under the original ones.
#pragma once
#include <memory>

#include "io/tensor_file.h"
#include "io/weights.h"

namespace vg {

// Original layout: layers.0.attention.qkv.weight and cap_embedder.1.weight (any prefix above).
bool is_zimage_file(const TensorFile& f);
// diffusers layout: layers.0.attention.to_q.weight and all_x_embedder.*.
bool is_zimage_diffusers(const TensorFile& f);

// An original-layout file's weights under the bare names (the prefix stripped);
// a diffusers-named file is mapped as zimage_weights_from_diffusers does.
// corrupt_file when `f` holds no Z-Image transformer.
WeightStore zimage_file_weights(std::shared_ptr<TensorFile> f);

// The store that also answers the original names from diffusers ones: to_q/to_k/to_v
// rows fused into attention.qkv (stored dtype), all_x_embedder.2-1 -> x_embedder,
// all_final_layer.2-1 -> final_layer, to_out.0 -> out, norm_q/norm_k -> q_norm/k_norm.
WeightStore zimage_weights_from_diffusers(WeightStore diffusers);

}  // namespace vg
