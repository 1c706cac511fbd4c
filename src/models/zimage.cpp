#include "models/zimage.h"

#include <cmath>
#include <cstring>

#include "backend/cpu/ops.h"
#include "core/error.h"
#include "core/profile.h"
#include "models/config_util.h"
#include "models/dit_blocks.h"

namespace vg {

namespace {

constexpr int64_t kSeqMultiple = 32;  // both streams are padded to multiples of this

int64_t round_up(int64_t n) { return (n + kSeqMultiple - 1) / kSeqMultiple * kSeqMultiple; }

// x [1, T, D] *= (1 + mod[chunk]) per channel.
void scale_by(Tensor& x, const Tensor& mod, int chunk) {
  const int64_t d = x.dim(2), t = x.dim(1);
  const float* s = mod.data() + chunk * d;
  for (int64_t r = 0; r < t; ++r)
    for (int64_t j = 0; j < d; ++j) x.data()[r * d + j] *= 1.0f + s[j];
}

// Rows [from, T) of x [1, T, D] set to `row` [1, D].
void fill_rows(Tensor& x, int64_t from, const Tensor& row) {
  const int64_t t = x.dim(1), d = x.dim(2);
  for (int64_t r = from; r < t; ++r) std::memcpy(x.data() + r * d, row.data(), d * sizeof(float));
}

}  // namespace

ZImageTransformer::Block ZImageTransformer::load_block(const WeightStore& w, const std::string& p,
                                                       bool modulated) const {
  const int64_t d = cfg_.dim, hd = cfg_.head_dim();
  // diffusers' FeedForward(dim, int(dim / 3 * 8)) where the store has no shapes (benchmark)
  const int64_t ffn = weight_rows_or(w, p + "feed_forward.w1.weight", 2, "Z-Image",
                                     static_cast<int64_t>(static_cast<double>(d) / 3 * 8));
  Block b;
  b.qkv = load_linear(w, p + "attention.qkv", 3 * d, d, false);
  b.out = load_linear(w, p + "attention.out", d, d, false);
  if (cfg_.qk_norm) {
    b.q_norm = w.get(p + "attention.q_norm.weight", {hd});
    b.k_norm = w.get(p + "attention.k_norm.weight", {hd});
  }
  b.attn_norm1 = w.get(p + "attention_norm1.weight", {d});
  b.attn_norm2 = w.get(p + "attention_norm2.weight", {d});
  b.ffn_norm1 = w.get(p + "ffn_norm1.weight", {d});
  b.ffn_norm2 = w.get(p + "ffn_norm2.weight", {d});
  b.w1 = load_linear(w, p + "feed_forward.w1", ffn, d, false);
  b.w2 = load_linear(w, p + "feed_forward.w2", d, ffn, false);
  b.w3 = load_linear(w, p + "feed_forward.w3", ffn, d, false);
  if (modulated) b.mod = load_linear(w, p + "adaLN_modulation.0", 4 * d, cfg_.adaln_dim());
  return b;
}

ZImageTransformer::ZImageTransformer(const ZImageConfig& cfg, const WeightStore& w)
    : cfg_(cfg), bf16_(w.compute_bf16()) {
  cfg.validate("Z-Image transformer config");
  const int64_t d = cfg.dim, a = cfg.adaln_dim(), pf = cfg.patch_features();
  x_embedder_ = load_linear(w, "x_embedder", d, pf);
  const int64_t mid = weight_rows_or(w, "t_embedder.mlp.0.weight", 2, "Z-Image", 1024);  // diffusers mid_size
  t1_ = load_linear(w, "t_embedder.mlp.0", mid, 256);
  t2_ = load_linear(w, "t_embedder.mlp.2", a, mid);
  cap_norm_ = w.get("cap_embedder.0.weight", {cfg.cap_feat_dim});
  cap_linear_ = load_linear(w, "cap_embedder.1", d, cfg.cap_feat_dim);
  x_pad_ = w.get("x_pad_token", {1, d});
  cap_pad_ = w.get("cap_pad_token", {1, d});
  final_mod_ = load_linear(w, "final_layer.adaLN_modulation.1", d, a);
  final_linear_ = load_linear(w, "final_layer.linear", pf, d);
  for (int64_t i = 0; i < cfg.n_refiner_layers; ++i) {
    noise_refiner_.push_back(load_block(w, "noise_refiner." + std::to_string(i) + ".", true));
    context_refiner_.push_back(load_block(w, "context_refiner." + std::to_string(i) + ".", false));
  }
  for (int64_t i = 0; i < cfg.n_layers; ++i) layers_.push_back(load_block(w, "layers." + std::to_string(i) + ".", true));
}

void ZImageTransformer::run_block(const Block& b, Tensor& x, const Tensor& adaln, const Tensor& cos,
                                  const Tensor& sin) const {
  const int64_t d = cfg_.dim, t = x.dim(1);
  const float eps = cfg_.norm_eps;
  Tensor mod;
  if (b.mod.loaded()) {
    mod = b.mod.forward(adaln);  // [1, 4D]: scale_msa, gate_msa, scale_mlp, gate_mlp
    for (int g : {1, 3})
      for (int64_t j = 0; j < d; ++j) mod.data()[g * d + j] = std::tanh(mod.data()[g * d + j]);
  }
  Tensor h = rms_norm(x, b.attn_norm1, eps);
  if (mod.numel()) scale_by(h, mod, 0);
  const Tensor qkv = b.qkv.forward(h);
  Tensor q({1, t, d}), k({1, t, d}), v({1, t, d});
  split_qkv_rope(qkv, 0, b.q_norm, b.k_norm, eps, cos, sin, cfg_.n_heads, q, k, v);
  Tensor a = rms_norm(b.out.forward(attention(q, k, v, static_cast<int>(cfg_.n_heads), false, bf16_)), b.attn_norm2, eps);
  if (mod.numel())
    gated_add(x, a, mod, 1);
  else
    add_inplace(x, a);
  h = rms_norm(x, b.ffn_norm1, eps);
  if (mod.numel()) scale_by(h, mod, 2);
  Tensor g = b.w1.forward(h);
  const Tensor u = b.w3.forward(h);
  activate_inplace(g, Act::kSilu);
  for (int64_t i = 0; i < g.numel(); ++i) g.data()[i] *= u.data()[i];
  const Tensor f = rms_norm(b.w2.forward(g), b.ffn_norm2, eps);
  if (mod.numel())
    gated_add(x, f, mod, 3);
  else
    add_inplace(x, f);
}

Tensor ZImageTransformer::forward(const Tensor& x, const Tensor& cap, float t, ZImageTrace* trace) const {
  profile::Scope prof_("zimage_forward");
  const int64_t p = cfg_.patch_size, c = cfg_.in_channels, d = cfg_.dim, pf = cfg_.patch_features();
  if (x.rank() != 4 || x.dim(0) != 1 || x.dim(3) != c || x.dim(1) % p || x.dim(2) % p)
    fail(ErrorCode::kShapeMismatch, "Z-Image takes one NHWC latent of " + std::to_string(c) +
                                        " channels with even height and width, got " + shape_str(x.shape()));
  if (cap.rank() != 2 || cap.dim(1) != cfg_.cap_feat_dim || cap.dim(0) < 1)
    fail(ErrorCode::kShapeMismatch, "Z-Image takes text states [n, " + std::to_string(cfg_.cap_feat_dim) +
                                        "], got " + shape_str(cap.shape()) +
                                        "; the text encoder does not match this transformer");
  const int64_t gh = x.dim(1) / p, gw = x.dim(2) / p, ni = gh * gw, li = round_up(ni);
  const int64_t nc = cap.dim(0), lc = round_up(nc);
  // ---- timestep -> adaln ----
  const float tv = static_cast<float>(t * cfg_.t_scale);
  Tensor adaln = t1_.forward(timestep_sinusoid(&tv, 1, 256, true, 0.0f));
  activate_inplace(adaln, Act::kSilu);
  adaln = t2_.forward(adaln);
  if (trace) trace->adaln_input = adaln.clone();
  // ---- image tokens: patches (f, h, w order; features (ph, pw, c)), the last one repeated to li ----
  Tensor patches({1, li, pf});
  for (int64_t r = 0; r < li; ++r) {
    const int64_t tok = r < ni ? r : ni - 1, i = tok / gw, j = tok % gw;
    float* dst = patches.data() + r * pf;
    for (int64_t py = 0; py < p; ++py)
      for (int64_t px = 0; px < p; ++px)
        std::memcpy(dst + (py * p + px) * c, x.data() + ((i * p + py) * x.dim(2) + j * p + px) * c, c * sizeof(float));
  }
  Tensor img = x_embedder_.forward(patches);
  if (trace) trace->x_embedded = img.clone().reshape({li, d});
  fill_rows(img, ni, x_pad_);
  // positions: caption rows (1 + k, 0, 0); image rows (lc + 1, i, j); image pads (0, 0, 0)
  std::vector<float> pos(static_cast<size_t>((li + lc) * 3), 0.0f);
  for (int64_t r = 0; r < ni; ++r) {
    pos[r * 3] = static_cast<float>(lc + 1);
    pos[r * 3 + 1] = static_cast<float>(r / gw);
    pos[r * 3 + 2] = static_cast<float>(r % gw);
  }
  for (int64_t k = 0; k < lc; ++k) pos[(li + k) * 3] = static_cast<float>(1 + k);
  Tensor cos, sin;
  rope_tables(pos.data(), li + lc, cfg_.axes_dims, cfg_.rope_theta, true, cos, sin);
  const Tensor img_cos = slice_tokens(cos.reshape({1, li + lc, cos.dim(1)}), 0, li).reshape({li, cos.dim(1)});
  const Tensor img_sin = slice_tokens(sin.reshape({1, li + lc, sin.dim(1)}), 0, li).reshape({li, sin.dim(1)});
  const Tensor cap_cos = slice_tokens(cos.reshape({1, li + lc, cos.dim(1)}), li, lc).reshape({lc, cos.dim(1)});
  const Tensor cap_sin = slice_tokens(sin.reshape({1, li + lc, sin.dim(1)}), li, lc).reshape({lc, sin.dim(1)});
  for (const Block& b : noise_refiner_) run_block(b, img, adaln, img_cos, img_sin);
  if (trace) trace->x_after_noise_refiner = img.clone();
  // ---- caption tokens: the last row repeated to lc ----
  Tensor capp({1, lc, cfg_.cap_feat_dim});
  const int64_t cw = cfg_.cap_feat_dim;
  for (int64_t r = 0; r < lc; ++r)
    std::memcpy(capp.data() + r * cw, cap.data() + std::min(r, nc - 1) * cw, cw * sizeof(float));
  Tensor txt = cap_linear_.forward(rms_norm(capp, cap_norm_, cfg_.norm_eps));
  if (trace) trace->cap_embedded = txt.clone().reshape({lc, d});
  fill_rows(txt, nc, cap_pad_);
  for (const Block& b : context_refiner_) run_block(b, txt, Tensor(), cap_cos, cap_sin);
  if (trace) trace->cap_after_context_refiner = txt.clone();
  // ---- joint layers over [image ; caption] ----
  Tensor u = concat_tokens(img, txt);
  if (trace) trace->unified_in = u.clone();
  for (const Block& b : layers_) run_block(b, u, adaln, cos, sin);
  if (trace) trace->unified_after_layers = u.clone();
  // ---- final layer: LN(x) * (1 + scale), no shift ----
  Tensor a = adaln.clone();
  activate_inplace(a, Act::kSilu);
  const Tensor scale = final_mod_.forward(a);
  Tensor mod({1, 2 * d});
  std::memset(mod.data(), 0, d * sizeof(float));
  std::memcpy(mod.data() + d, scale.data(), d * sizeof(float));
  const Tensor out = final_linear_.forward(modulated_layer_norm(u, mod, 0, 1));
  if (trace) trace->final_layer_out = out.clone();
  // ---- unpatchify the real image rows ----
  Tensor y({1, x.dim(1), x.dim(2), c});
  for (int64_t r = 0; r < ni; ++r) {
    const int64_t i = r / gw, j = r % gw;
    const float* src = out.data() + r * pf;
    for (int64_t py = 0; py < p; ++py)
      for (int64_t px = 0; px < p; ++px)
        std::memcpy(y.data() + ((i * p + py) * x.dim(2) + j * p + px) * c, src + (py * p + px) * c, c * sizeof(float));
  }
  return y;
}

}  // namespace vg
