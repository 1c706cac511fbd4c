// SD3 MMDiT weight names: the model reads Stability's single-file names; a
// diffusers `transformer/` folder is exposed under them here (to_q/to_k/to_v
// fused into one qkv, and the two (scale, shift) modulations put back in
// Stability's (shift, scale) order).
#pragma once
#include <memory>
#include <string>

#include "io/tensor_file.h"
#include "io/weights.h"

namespace vg {

// `diffusers` (an SD3Transformer2DModel's weights, diffusers names) seen under
// Stability names (`joint_blocks.N.x_block.attn.qkv.weight`, ...). The fused
// and reordered tensors are owned by the returned store (and its copies), in
// the source dtype; GGUF block types fuse by whole rows.
WeightStore mmdit_from_diffusers(const WeightStore& diffusers);

// Whether `w` holds diffusers names (pos_embed.proj.weight) rather than
// Stability ones (x_embedder.proj.weight).
bool is_diffusers_mmdit(const WeightStore& w);

// The MMDiT weights of `path` under Stability names: a diffusers transformer
// folder, or a single file (.safetensors / .gguf) whose names may carry the
// `model.diffusion_model.` prefix.
WeightStore open_mmdit_weights(const std::string& path);
// The same for a file already open.
WeightStore mmdit_file_weights(std::shared_ptr<TensorFile> file);
// Whether a file holds an MMDiT (Stability or diffusers names, with or without the prefix).
bool is_mmdit_file(const TensorFile& f);

}  // namespace vg
