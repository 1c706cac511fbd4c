// Stateless CPU kernels on float32 tensors. Image activations are NHWC;
// sequences are [B, T, C].
#pragma once
#include "core/tensor.h"

namespace vg {

enum class Act { kNone, kSilu, kGelu, kGeluTanh, kQuickGelu };

// GroupNorm over [N, ..., C] (all middle dims are spatial), optionally + SiLU.
// torch computes GroupNorm on channels-last tensors with a one-pass float
// variance (sum x^2 / n - mean^2); diffusers' image-to-image runs its UNet on
// channels-last latents (they come from a transposed numpy image), so to give
// the same numbers there we switch to that formula while this guard lives.
class TorchChannelsLastGroupNorm {
 public:
  explicit TorchChannelsLastGroupNorm(bool on = true);
  ~TorchChannelsLastGroupNorm();
  static bool active();

 private:
  bool prev_;
};

Tensor group_norm(const Tensor& x, int groups, const Tensor& gamma, const Tensor& beta,
                  float eps, bool silu = false);
// The same, writing over x (x must not be shared).
void group_norm_inplace(Tensor& x, int groups, const Tensor& gamma, const Tensor& beta, float eps, bool silu = false);
// GroupNorm (+SiLU) written as bf16 into `out` (x.numel() values), for a
// bf16 convolution that reads it directly.
void group_norm_to_bf16(const Tensor& x, int groups, const Tensor& gamma, const Tensor& beta, float eps, bool silu, uint16_t* out);
// Nearest upsampling written as bf16 (n * oh * ow * C values).
void upsample_nearest_to_bf16(const Tensor& x, int64_t out_h, int64_t out_w, uint16_t* out);
// RMSNorm over the last dimension (T5, Qwen, the DiTs): w * (x * rsqrt(mean(x^2) + eps)),
// float32 with the sum of squares in float64. w may be empty (no scale).
Tensor rms_norm(const Tensor& x, const Tensor& w, float eps);
// The same on `rows` rows of `c` values (out may alias x).
void rms_norm_rows(const float* x, int64_t rows, int64_t c, const float* w, float eps, float* out);
// LayerNorm over the last dimension.
Tensor layer_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps);

void activate_inplace(Tensor& x, Act act);
Tensor activate(const Tensor& x, Act act);
void add_inplace(Tensor& a, const Tensor& b);         // same shape
void scale_inplace(Tensor& a, float s);
// x [N, S..., C] += v [N, C] broadcast over the spatial dims.
void add_per_channel_inplace(Tensor& x, const Tensor& v);
// GEGLU: x [..., 2D] -> first half * gelu(second half), [..., D].
Tensor geglu(const Tensor& x);

Tensor upsample_nearest(const Tensor& x, int64_t out_h, int64_t out_w);  // NHWC
Tensor concat_channels(const Tensor& a, const Tensor& b);               // NHWC, last dim
Tensor concat_batch(const Tensor& a, const Tensor& b);                  // first dim
Tensor slice_batch(const Tensor& x, int64_t begin, int64_t end);

Tensor nchw_to_nhwc(const Tensor& x);
Tensor nhwc_to_nchw(const Tensor& x);

// Multi-head scaled-dot-product attention. q: [B,Tq,H*D], k/v: [B,Tk,H*D].
// Computed per (batch, head, block of queries): memory is O(block*Tk), never
// O(Tq*Tk) per head.
Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, int heads, bool causal, bool bf16 = false);
// The bf16 variant (QK^T and PV in bf16, softmax and accumulation in float32).
Tensor attention_bf16(const Tensor& q, const Tensor& k, const Tensor& v, int heads, bool causal);

}  // namespace vg
