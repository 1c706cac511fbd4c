// 2x2 latent packing of FLUX and Qwen-Image: NHWC latents [B,h,w,C] <->
// tokens [B,(h/2)(w/2),4C] where token (r,c) holds channel k*4 + dy*2 + dx
// from latent pixel (2r+dy, 2c+dx, k) (diffusers' _pack_latents), and the
// (0, row, col) position ids of those tokens.
#pragma once
#include <memory>

#include "core/tensor.h"
#include "sampling/rng.h"

namespace vg {

Tensor pack_latents_2x2(const Tensor& nhwc);
Tensor unpack_latents_2x2(const Tensor& tokens, int64_t h, int64_t w);
// [ (h/2)(w/2), 3 ] rows (0, row, col).
Tensor packed_position_ids(int64_t h, int64_t w);

// The noise source of a pipeline whose latents are packed while it samples
// (FLUX, Qwen-Image): a sampler's latent-shaped draw is made as torch draws
// it there, randn([N, (h/2)(w/2), 4C]), and unpacked to NHWC.
std::unique_ptr<Rng> packed_noise_rng(std::unique_ptr<Rng> inner);

}  // namespace vg
