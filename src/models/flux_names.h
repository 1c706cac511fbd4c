// FLUX.1 transformer weight layouts: BFL's original names (flux1-dev.safetensors,
// city96's GGUF files, ComfyUI checkpoints under model.diffusion_model.) and
// diffusers' FluxTransformer2DModel names. FluxTransformer reads BFL names;
// a diffusers store is exposed under them here.
#pragma once
#include <memory>

#include "io/tensor_file.h"
#include "io/weights.h"

namespace vg {

// The prefix ComfyUI-style full checkpoints put before the transformer's names.
inline constexpr const char* kFluxBflPrefix = "model.diffusion_model.";

// BFL layout: double_blocks.0.img_attn.qkv.weight, with or without kFluxBflPrefix.
bool is_flux_bfl(const TensorFile& f);
// diffusers layout: transformer_blocks.0.attn.add_q_proj.weight and x_embedder.weight.
bool is_flux_diffusers(const TensorFile& f);

// A BFL file's transformer weights under the bare BFL names (the prefix, if
// any, stripped). corrupt_file when `f` is not a BFL FLUX transformer.
WeightStore flux_bfl_weights(std::shared_ptr<TensorFile> f);

// The same store that also answers BFL names from diffusers ones: to_q/to_k/to_v
// (+ proj_mlp for single blocks) rows concatenated into owned fused tensors of
// the stored dtype (GGUF block types too: whole rows), norm_out's
// (scale, shift) halves swapped into final_layer's (shift, scale), the rest
// renamed. Nothing is converted until a layer asks for it.
WeightStore flux_weights_from_diffusers(WeightStore diffusers);

}  // namespace vg
