#include "models/wan.h"

#include <cmath>
#include <cstring>
#include <map>

#include "backend/cpu/ops.h"
#include "core/error.h"
#include "core/profile.h"
#include "models/dit_blocks.h"

namespace vg {

namespace {

// LN(x) * (1 + mod[u][scale]) + mod[u][shift] per row of x [1, N, D], u = idx[row]
// (mod [U, n*D]: one row per distinct timestep).
Tensor modulate_rows(const Tensor& x, const Tensor& mod, const std::vector<int64_t>& idx, int shift,
                     int scale, float eps) {
  profile::Scope prof_("dit_norm");
  const int64_t n = x.dim(1), d = x.dim(2), m = mod.dim(1);
  Tensor out(x.shape());
#pragma omp parallel for
  for (int64_t r = 0; r < n; ++r) {
    const float* row = x.data() + r * d;
    double sum = 0, sq = 0;
    for (int64_t j = 0; j < d; ++j) sum += row[j];
    const double mean = sum / d;
    for (int64_t j = 0; j < d; ++j) sq += (row[j] - mean) * (row[j] - mean);
    const float rstd = static_cast<float>(1.0 / std::sqrt(sq / d + eps)), fm = static_cast<float>(mean);
    const float* mb = mod.data() + idx[r] * m;
    const float *sh = mb + shift * d, *sc = mb + scale * d;
    float* o = out.data() + r * d;
    for (int64_t j = 0; j < d; ++j) o[j] = (row[j] - fm) * rstd * (1.0f + sc[j]) + sh[j];
  }
  return out;
}

// x [1, N, D] += mod[idx[row]][gate] * y.
void gated_add_rows(Tensor& x, const Tensor& y, const Tensor& mod, const std::vector<int64_t>& idx,
                    int gate) {
  const int64_t n = x.dim(1), d = x.dim(2), m = mod.dim(1);
#pragma omp parallel for
  for (int64_t r = 0; r < n; ++r) {
    const float* g = mod.data() + idx[r] * m + gate * d;
    float* xr = x.data() + r * d;
    const float* yr = y.data() + r * d;
    for (int64_t j = 0; j < d; ++j) xr[j] += g[j] * yr[j];
  }
}

// table [k*D] (a scale_shift_table) + rows [U, k*D or D] -> [U, k*D]; D-wide
// rows (the head's temb) are added to every chunk, as torch broadcasts them.
Tensor add_table(const Tensor& table, const Tensor& rows) {
  const int64_t m = table.numel(), rm = rows.dim(1);
  Tensor out({rows.dim(0), m});
  for (int64_t u = 0; u < rows.dim(0); ++u)
    for (int64_t j = 0; j < m; ++j) out.data()[u * m + j] = table.data()[j] + rows.data()[u * rm + j % rm];
  return out;
}

// Rows idx[r] of src [U, m] -> [N, m] (traces only).
Tensor expand_rows(const Tensor& src, const std::vector<int64_t>& idx) {
  const int64_t m = src.dim(1), n = static_cast<int64_t>(idx.size());
  Tensor out({n, m});
  for (int64_t r = 0; r < n; ++r) std::memcpy(out.data() + r * m, src.data() + idx[r] * m, m * sizeof(float));
  return out;
}

}  // namespace

void wan_rope_tables(const WanTransformerConfig& cfg, int64_t f, int64_t gh, int64_t gw, Tensor& cos,
                     Tensor& sin) {
  const int64_t n = f * gh * gw;
  std::vector<float> pos(static_cast<size_t>(n * 3));
  for (int64_t r = 0; r < n; ++r) {
    pos[r * 3] = static_cast<float>(r / (gh * gw));
    pos[r * 3 + 1] = static_cast<float>(r / gw % gh);
    pos[r * 3 + 2] = static_cast<float>(r % gw);
  }
  rope_tables(pos.data(), n, cfg.rope_axes(), 10000.0, true, cos, sin);
}

WanTransformer::Block WanTransformer::load_block(const WeightStore& w, const std::string& p) const {
  const int64_t d = cfg_.dim();
  Block b;
  b.q = load_linear(w, p + "self_attn.q", d, d);
  b.k = load_linear(w, p + "self_attn.k", d, d);
  b.v = load_linear(w, p + "self_attn.v", d, d);
  b.o = load_linear(w, p + "self_attn.o", d, d);
  b.cq = load_linear(w, p + "cross_attn.q", d, d);
  b.ck = load_linear(w, p + "cross_attn.k", d, d);
  b.cv = load_linear(w, p + "cross_attn.v", d, d);
  b.co = load_linear(w, p + "cross_attn.o", d, d);
  if (cfg_.qk_norm) {
    b.norm_q = w.get(p + "self_attn.norm_q.weight", {d});
    b.norm_k = w.get(p + "self_attn.norm_k.weight", {d});
    b.cnorm_q = w.get(p + "cross_attn.norm_q.weight", {d});
    b.cnorm_k = w.get(p + "cross_attn.norm_k.weight", {d});
  }
  if (cfg_.cross_attn_norm) {
    b.norm3_w = w.get(p + "norm3.weight", {d});
    b.norm3_b = w.get(p + "norm3.bias", {d});
  }
  b.ffn0 = load_linear(w, p + "ffn.0", cfg_.ffn_dim, d);
  b.ffn2 = load_linear(w, p + "ffn.2", d, cfg_.ffn_dim);
  b.modulation = w.get(p + "modulation", {1, 6, d}).reshape({6 * d});
  return b;
}

WanTransformer::WanTransformer(const WanTransformerConfig& cfg, const WeightStore& w)
    : cfg_(cfg), bf16_(w.compute_bf16()) {
  cfg.validate("Wan transformer config");
  const int64_t d = cfg.dim(), pv = cfg.patch_volume(), pin = cfg.in_channels * pv;
  // Conv3d with kernel = stride = patch: a linear on (c, kt, ky, kx) patch features
  const Shape pshape{d, cfg.in_channels, cfg.patch_size[0], cfg.patch_size[1], cfg.patch_size[2]};
  Tensor pbias = w.get("patch_embedding.bias", {d});
  patch_ = bf16_ ? Linear(w.get_bf16("patch_embedding.weight", pshape), d, pin, std::move(pbias))
                 : Linear(w.get("patch_embedding.weight", pshape).reshape({d, pin}), std::move(pbias));
  t1_ = load_linear(w, "time_embedding.0", d, cfg.freq_dim);
  t2_ = load_linear(w, "time_embedding.2", d, d);
  tproj_ = load_linear(w, "time_projection.1", 6 * d, d);
  txt1_ = load_linear(w, "text_embedding.0", d, cfg.text_dim);
  txt2_ = load_linear(w, "text_embedding.2", d, d);
  head_ = load_linear(w, "head.head", cfg.out_channels * pv, d);
  head_mod_ = w.get("head.modulation", {1, 2, d}).reshape({2 * d});
  for (int64_t i = 0; i < cfg.num_layers; ++i)
    blocks_.push_back(load_block(w, "blocks." + std::to_string(i) + "."));
}

WanContext WanTransformer::prepare_text(const Tensor& prompt_embeds) const {
  profile::Scope prof_("wan_prepare_text");
  const bool ok = (prompt_embeds.rank() == 2 || (prompt_embeds.rank() == 3 && prompt_embeds.dim(0) == 1)) &&
                  prompt_embeds.dim(-1) == cfg_.text_dim && prompt_embeds.dim(-2) >= 1;
  if (!ok)
    fail(ErrorCode::kShapeMismatch,
         "the Wan transformer takes text states [L, " + std::to_string(cfg_.text_dim) + "], got " +
             shape_str(prompt_embeds.shape()) + "; the text encoder does not match this transformer");
  const int64_t l = prompt_embeds.dim(-2);
  WanContext ctx;
  ctx.text_embedded = gelu_tanh_mlp(txt1_, txt2_, prompt_embeds.reshape({1, l, cfg_.text_dim}));
  for (const Block& b : blocks_) {
    Tensor k = b.ck.forward(ctx.text_embedded);
    ctx.cross_k.push_back(cfg_.qk_norm ? rms_norm(k, b.cnorm_k, cfg_.eps) : k);
    ctx.cross_v.push_back(b.cv.forward(ctx.text_embedded));
  }
  return ctx;
}

void WanTransformer::run_block(const Block& b, size_t index, Tensor& x, const Tensor& mod,
                               const std::vector<int64_t>& idx, const Tensor& cos, const Tensor& sin,
                               const WanContext& ctx) const {
  const int64_t n = x.dim(1), d = cfg_.dim(), hd = cfg_.attention_head_dim, heads = cfg_.num_attention_heads;
  const float eps = cfg_.eps;
  // 1. self-attention: q/k RMSNorm across all heads, then RoPE per head
  Tensor h = modulate_rows(x, mod, idx, 0, 1, eps);
  Tensor q = b.q.forward(h), k = b.k.forward(h);
  const Tensor v = b.v.forward(h);
  if (cfg_.qk_norm) {
    q = rms_norm(q, b.norm_q, eps);
    k = rms_norm(k, b.norm_k, eps);
  }
#pragma omp parallel for
  for (int64_t r = 0; r < n; ++r) {
    const float* c = cos.data() + r * hd;
    const float* s = sin.data() + r * hd;
    norm_rope(q.data() + r * d, heads, hd, nullptr, eps, c, s);
    norm_rope(k.data() + r * d, heads, hd, nullptr, eps, c, s);
  }
  gated_add_rows(x, b.o.forward(attention(q, k, v, static_cast<int>(heads), false, bf16_)), mod, idx, 2);
  // 2. cross-attention on the prepared text (no gate, no mask)
  h = cfg_.cross_attn_norm ? layer_norm(x, b.norm3_w, b.norm3_b, eps) : x;
  q = b.cq.forward(h);
  if (cfg_.qk_norm) q = rms_norm(q, b.cnorm_q, eps);
  add_inplace(x, b.co.forward(attention(q, ctx.cross_k[index], ctx.cross_v[index], static_cast<int>(heads),
                                        false, bf16_)));
  // 3. feed-forward
  h = modulate_rows(x, mod, idx, 3, 4, eps);
  gated_add_rows(x, gelu_tanh_mlp(b.ffn0, b.ffn2, h), mod, idx, 5);
}

Tensor WanTransformer::forward(const Tensor& x, const std::vector<float>& t, const WanContext& ctx,
                               WanTrace* trace) const {
  profile::Scope prof_("wan_forward");
  const int64_t pt = cfg_.patch_size[0], ph = cfg_.patch_size[1], pw = cfg_.patch_size[2];
  const int64_t c = cfg_.in_channels, d = cfg_.dim(), pin = c * cfg_.patch_volume();
  if (x.rank() != 4 || x.dim(3) != c || x.dim(0) < 1 || x.dim(0) % pt || x.dim(1) < ph || x.dim(1) % ph ||
      x.dim(2) < pw || x.dim(2) % pw)
    fail(ErrorCode::kShapeMismatch, "the Wan transformer takes latents [F, h, w, " + std::to_string(c) +
                                        "] with h and w multiples of " + std::to_string(ph) + ", got " +
                                        shape_str(x.shape()));
  const int64_t gf = x.dim(0) / pt, gh = x.dim(1) / ph, gw = x.dim(2) / pw, n = gf * gh * gw;
  const int64_t longest = std::max(gf, std::max(gh, gw));
  if (longest > cfg_.rope_max_seq_len)
    fail(ErrorCode::kInvalidArgument, "the video is " + std::to_string(longest) +
                                          " latent tokens along one axis; the "
                                          "Wan transformer's position table covers " +
                                          std::to_string(cfg_.rope_max_seq_len) +
                                          "; make it shorter or smaller");
  if (static_cast<int64_t>(t.size()) != n)
    fail(ErrorCode::kShapeMismatch, "the Wan transformer takes one timestep per token (" + std::to_string(n) +
                                        "), got " + std::to_string(t.size()));
  if (ctx.cross_k.size() != blocks_.size() || ctx.cross_v.size() != blocks_.size() ||
      (!blocks_.empty() && ctx.cross_k[0].dim(2) != d))
    fail(ErrorCode::kInvalidArgument,
         "the Wan text context was not prepared by this transformer (prepare_text)");
  // ---- patches in (f, y, x) order, features (c, kt, ky, kx) as the Conv3d weight ----
  Tensor patches({1, n, pin});
  const int64_t wd = x.dim(2);
  for (int64_t r = 0; r < n; ++r) {
    const int64_t f = r / (gh * gw), i = r / gw % gh, j = r % gw;
    float* dst = patches.data() + r * pin;
    for (int64_t kt = 0; kt < pt; ++kt)
      for (int64_t ky = 0; ky < ph; ++ky)
        for (int64_t kx = 0; kx < pw; ++kx) {
          const float* src = x.data() + (((f * pt + kt) * x.dim(1) + i * ph + ky) * wd + j * pw + kx) * c;
          const int64_t off = (kt * ph + ky) * pw + kx;
          for (int64_t ch = 0; ch < c; ++ch) dst[ch * pt * ph * pw + off] = src[ch];
        }
  }
  Tensor tokens = patch_.forward(patches);
  if (trace) trace->patch_embedding_tokens = tokens.clone().reshape({n, d});
  // ---- timestep embedding and modulation per distinct value ----
  std::map<float, int64_t> slot;
  std::vector<float> values;
  std::vector<int64_t> idx(static_cast<size_t>(n));
  for (int64_t r = 0; r < n; ++r) {
    if (!std::isfinite(t[r]))
      fail(ErrorCode::kInvalidArgument,
           "a Wan timestep is not a finite number (" + std::to_string(t[r]) + ")");
    auto [it, added] = slot.emplace(t[r], static_cast<int64_t>(values.size()));
    if (added) values.push_back(t[r]);
    idx[r] = it->second;
  }
  const int64_t u = static_cast<int64_t>(values.size());
  Tensor temb = t1_.forward(timestep_sinusoid(values.data(), u, cfg_.freq_dim, true, 0.0f));
  activate_inplace(temb, Act::kSilu);
  temb = t2_.forward(temb);                                         // [U, D]
  const Tensor tproj = tproj_.forward(activate(temb, Act::kSilu));  // [U, 6D]
  if (trace) {
    trace->temb = expand_rows(temb, idx);
    trace->timestep_proj = expand_rows(tproj, idx);
    trace->block_out.clear();
    trace->distinct_timesteps = u;
  }
  Tensor cos, sin;
  wan_rope_tables(cfg_, gf, gh, gw, cos, sin);
  for (size_t i = 0; i < blocks_.size(); ++i) {
    run_block(blocks_[i], i, tokens, add_table(blocks_[i].modulation, tproj), idx, cos, sin, ctx);
    if (trace) trace->block_out.push_back(tokens.clone().reshape({n, d}));
  }
  // ---- head: modulated by temb (shift, scale), then unpatchify ((kt, ky, kx, c), c fastest) ----
  const Tensor out = head_.forward(modulate_rows(tokens, add_table(head_mod_, temb), idx, 0, 1, cfg_.eps));
  const int64_t co = cfg_.out_channels, pout = co * cfg_.patch_volume();
  Tensor y({x.dim(0), x.dim(1), wd, co});
  for (int64_t r = 0; r < n; ++r) {
    const int64_t f = r / (gh * gw), i = r / gw % gh, j = r % gw;
    const float* src = out.data() + r * pout;
    for (int64_t kt = 0; kt < pt; ++kt)
      for (int64_t ky = 0; ky < ph; ++ky)
        for (int64_t kx = 0; kx < pw; ++kx)
          std::memcpy(y.data() + (((f * pt + kt) * x.dim(1) + i * ph + ky) * wd + j * pw + kx) * co,
                      src + ((kt * ph + ky) * pw + kx) * co, co * sizeof(float));
  }
  return y;
}

}  // namespace vg
