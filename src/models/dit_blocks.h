// Pieces shared by the diffusion transformers (FLUX, MMDiT; later Z-Image,
// Qwen-Image, Wan): AdaLN modulation, gated residuals, token-axis slicing
// and joining of [B, T, D] streams, the GELU(tanh) MLP.
#pragma once
#include "backend/cpu/layers.h"
#include <vector>

#include "core/tensor.h"

namespace vg {

// LayerNorm without affine (eps 1e-6) of x [B,T,D], modulated by chunks of
// mod [B, n*D]: LN(x) * (1 + mod[scale]) + mod[shift]. `second` (MMDiT-X)
// gets a second modulation (shift2, scale2) of the same LN(x).
Tensor modulated_layer_norm(const Tensor& x, const Tensor& mod, int shift, int scale, Tensor* second = nullptr,
                            int shift2 = 0, int scale2 = 0);
// x [B,T,D] += mod[gate] [B,D] * y.
void gated_add(Tensor& x, const Tensor& y, const Tensor& mod, int gate);
// Rows [begin, begin+len) of every batch of a [B, T, D] tensor (x itself when whole).
Tensor slice_tokens(const Tensor& x, int64_t begin, int64_t len);
// cat([a, b], dim=1) of [B, Ta, D] and [B, Tb, D].
Tensor concat_tokens(const Tensor& a, const Tensor& b);
// RoPE tables cos/sin [n, sum(axes)] for per-token positions pos [n, axes.size()]:
// axis a with d_a dims uses angle_j = pos_a * theta^(-2j/d_a), j < d_a/2, each
// value repeated for both elements of its interleaved pair (2j, 2j+1). f64:
// angles in float64 then cast (FLUX, Z-Image); else float32 (Qwen-Image).
void rope_tables(const float* pos, int64_t n, const std::vector<int64_t>& axes, double theta, bool f64, Tensor& cos,
                 Tensor& sin);
// Per-head RMSNorm (scale w, eps; w null = no norm) then the interleaved-pair
// rotation (complex multiply by cos + i sin) of one [heads*hd] row, in place.
void norm_rope(float* x, int64_t heads, int64_t hd, const float* w, float eps, const float* c, const float* s);
// Copies the q, k, v columns (0, D, 2D) of src [B, T, stride] into the joint
// q, k, v [B, Ttot, D] at token offset t0, RMS-normalising (qn/kn, per head)
// and rotating q and k with rows t0.. of the cos/sin tables.
void scatter_qkv(const Tensor& src, int64_t t0, const Tensor& qn, const Tensor& kn, const Tensor& cos,
                 const Tensor& sin, int64_t heads, float eps, Tensor& q, Tensor& k, Tensor& v);
// fc2(gelu_tanh(fc1(x))).
Tensor gelu_tanh_mlp(const Linear& fc1, const Linear& fc2, const Tensor& x);

}  // namespace vg
