// FLOP and parameter counts of the DiT transformers (batch 1): every GEMM
// (2 FLOPs per multiply-add) and both attention products (QK^T and AV).
// Element-wise work (norms, RoPE, gates) is left out, as for the UNet.
#include "cli/bench_dit.h"

namespace vg::cli {

DitShape flux_cost(const FluxConfig& c, int64_t l, int64_t s) {
  const double d = static_cast<double>(c.inner_dim()), t = static_cast<double>(l + s);
  const double L = static_cast<double>(l), S = static_cast<double>(s);
  const double attn = 4.0 * t * t * d;  // QK^T and AV over the joint sequence
  DitShape r;
  // embedders: img_in, txt_in; conditioning MLPs (one row each)
  r.params =
      c.in_channels * d + c.joint_attention_dim * d + (256 + d) * d + c.pooled_projection_dim * d + d * d;
  if (c.guidance_embeds) r.params += (256 + d) * d;
  r.flops = 2 * (L * c.in_channels * d + S * c.joint_attention_dim * d);
  // double block: per stream mod 6d^2 (one row), qkv 3d^2, proj d^2, mlp 8d^2
  const double dbl_params = 2 * 18 * d * d, dbl_flops = 2 * 12 * d * d * t + attn + 2 * 12 * d * d;
  // single block: mod 3d^2, linear1 (3d + 4d) x d, linear2 d x 5d
  const double sgl_params = 15 * d * d, sgl_flops = 2 * 12 * d * d * t + attn + 2 * 3 * d * d;
  r.params += c.num_layers * dbl_params + c.num_single_layers * sgl_params + 2 * d * d + d * c.out_channels;
  r.flops += c.num_layers * dbl_flops + c.num_single_layers * sgl_flops + 2 * L * d * c.out_channels;
  return r;
}

DitShape mmdit_cost(const MmditConfig& c, int64_t x_tokens, int64_t c_tokens) {
  const double d = static_cast<double>(c.hidden()), X = static_cast<double>(x_tokens),
               C = static_cast<double>(c_tokens), t = X + C;
  const double patch = static_cast<double>(c.patch_size * c.patch_size);
  DitShape r;
  r.params = static_cast<double>(c.pos_embed_max_size * c.pos_embed_max_size) * d +
             patch * c.in_channels * d + c.joint_attention_dim * d + (256 + d) * d +
             (c.pooled_projection_dim + d) * d + 2 * d * d + d * patch * c.out_channels;
  r.flops =
      2 * (X * patch * c.in_channels * d + C * c.joint_attention_dim * d + X * d * patch * c.out_channels);
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const bool dual = c.dual(i), pre_only = i + 1 == c.num_layers;
    const double x_mod = (dual ? 9 : 6) * d * d, c_mod = (pre_only ? 2 : 6) * d * d;
    const double c_lin = pre_only ? 3 * d * d : 12 * d * d;  // the last block's text stream gives k, v only
    r.params += x_mod + 12 * d * d + c_mod + c_lin + (dual ? 4 * d * d : 0);
    r.flops += 2 * (x_mod + c_mod) + 2 * 12 * d * d * X + 2 * c_lin * C + 4 * t * t * d;
    if (dual) r.flops += 2 * 4 * d * d * X + 4 * X * X * d;  // MMDiT-X image-only attention
  }
  return r;
}

// Z-Image: both streams padded to multiples of 32 (the model computes the
// pads); noise refiner on the image, context refiner (no modulation) on the
// caption, joint layers and the final layer over both.
DitShape zimage_cost(const ZImageConfig& c, int64_t image_tokens, int64_t cap_tokens) {
  const auto pad = [](int64_t n) { return static_cast<double>((n + 31) / 32 * 32); };
  const double d = static_cast<double>(c.dim), f = static_cast<double>(static_cast<int64_t>(d / 3 * 8));
  const double a = static_cast<double>(c.adaln_dim()), pf = static_cast<double>(c.patch_features());
  const double li = pad(image_tokens), lc = pad(cap_tokens), t = li + lc, mid = 1024;
  const double lin = 4 * d * d + 3 * d * f, mod = 4 * d * a;  // qkv + out, SwiGLU w1 w2 w3
  auto block = [&](double n) { return 2 * lin * n + 4 * n * n * d; };
  const double nr = static_cast<double>(c.n_refiner_layers), nl = static_cast<double>(c.n_layers);
  DitShape r;
  r.params = pf * d + c.cap_feat_dim * d + 256 * mid + mid * a + a * d + d * pf;  // embedders, final layer
  r.params += nr * (2 * lin + mod) + nl * (lin + mod);
  r.flops = 2 * (li * pf * d + lc * c.cap_feat_dim * d + t * d * pf + 256 * mid + mid * a + a * d);
  r.flops += nr * (block(li) + 2 * mod + block(lc)) + nl * (block(t) + 2 * mod);
  return r;
}

// Qwen-Image: 60 dual-stream blocks as FLUX's double blocks (per stream
// mod 6d^2 on one row, qkv 3d^2, out d^2, GELU MLP 8d^2) over [text ; image].
DitShape qwenimage_cost(const QwenImageConfig& c, int64_t l, int64_t s) {
  const double d = static_cast<double>(c.inner_dim()), t = static_cast<double>(l + s);
  const double L = static_cast<double>(l), S = static_cast<double>(s), n = static_cast<double>(c.num_layers);
  const double in = static_cast<double>(c.in_channels), out = static_cast<double>(c.out_features());
  DitShape r;
  // img_in, txt_in, the timestep MLP, norm_out (one row), proj_out
  r.params = in * d + c.joint_attention_dim * d + 256 * d + d * d + 2 * d * d + d * out;
  r.flops = 2 * (L * in * d + S * c.joint_attention_dim * d + 256 * d + 3 * d * d + L * d * out);
  r.params += n * 2 * 18 * d * d;
  r.flops += n * (2 * 12 * d * d * t + 4 * t * t * d + 2 * 12 * d * d);
  return r;
}

}  // namespace vg::cli
