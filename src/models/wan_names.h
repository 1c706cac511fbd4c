// Wan transformer weight layouts: the original names (Wan-AI's checkpoints,
// ComfyUI's wan2.2_ti2v_5B_fp16.safetensors with or without
// `model.diffusion_model.`, city96's GGUFs) that WanTransformer reads, and
// diffusers' WanTransformer3DModel names, exposed under the original ones.
#pragma once
#include <memory>
#include <optional>
#include <string>

#include "io/tensor_file.h"
#include "io/weights.h"

namespace vg {

// A Wan transformer in either layout: original (blocks.0.self_attn.q.weight
// and patch_embedding.weight, any prefix above) or diffusers
// (blocks.0.attn1.to_q.weight and condition_embedder.time_proj.weight).
bool is_wan_transformer_file(const TensorFile& f);
// The diffusers layout only.
bool is_wan_transformer_diffusers(const TensorFile& f);

// The file's weights under the original bare names (prefix stripped; a
// diffusers-named file is mapped as wan_weights_from_diffusers does).
// corrupt_file when `f` holds no Wan transformer.
WeightStore wan_file_weights(std::shared_ptr<TensorFile> f);

// The store that also answers the original names from diffusers ones.
WeightStore wan_weights_from_diffusers(WeightStore diffusers);

// The diffusers name of an original Wan name (nullopt for names the map does
// not know): time_embedding.0/2 -> condition_embedder.time_embedder.linear_1/2,
// time_projection.1 -> condition_embedder.time_proj, text_embedding.0/2 ->
// condition_embedder.text_embedder.linear_1/2, self_attn/cross_attn ->
// attn1/attn2 with q/k/v/o -> to_q/to_k/to_v/to_out.0, norm3 -> norm2,
// ffn.0/2 -> ffn.net.0.proj/ffn.net.2, blocks.N.modulation ->
// blocks.N.scale_shift_table, head.modulation -> scale_shift_table,
// head.head -> proj_out.
std::optional<std::string> wan_diffusers_name(const std::string& original);

}  // namespace vg
