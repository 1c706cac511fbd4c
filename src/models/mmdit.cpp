#include "models/mmdit.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/profile.h"
#include "models/dit_blocks.h"

namespace vg {

namespace {

constexpr float kEps = 1e-6f;  // LayerNorm and RMSNorm eps everywhere in SD3

struct QkvPart {
  const Tensor* qkv;       // [B, T, 3D] (q;k;v)
  const Tensor *lnq, *lnk; // per-head RMSNorm scales or empty
};

// Splits the fused projections of each part into q, k, v [B, sum T, D]
// (parts concatenated along the sequence, in order), with the per-head
// RMSNorm of q and k applied on the way: one pass, no intermediate copies.
void joint_qkv(const std::vector<QkvPart>& parts, int64_t heads, Tensor& q, Tensor& k, Tensor& v) {
  profile::Scope prof_("mmdit_qk_norm");
  const int64_t b = parts[0].qkv->dim(0), d = parts[0].qkv->dim(2) / 3, hd = d / heads;
  int64_t total = 0;
  for (const auto& p : parts) total += p.qkv->dim(1);
  q = Tensor({b, total, d});
  k = Tensor({b, total, d});
  v = Tensor({b, total, d});
  int64_t off = 0;
  for (const auto& p : parts) {
    const int64_t t = p.qkv->dim(1);
    const float* lq = p.lnq->empty() ? nullptr : p.lnq->data();
    const float* lk = p.lnk->empty() ? nullptr : p.lnk->data();
#pragma omp parallel for
    for (int64_t r = 0; r < b * t; ++r) {
      const float* src = p.qkv->data() + r * 3 * d;
      const int64_t dst = ((r / t) * total + off + r % t) * d;
      auto put = [&](const float* s, float* o, const float* scale) {
        if (!scale) {
          std::memcpy(o, s, sizeof(float) * d);
          return;
        }
        for (int64_t h = 0; h < heads; ++h) {
          const float* sh = s + h * hd;
          float ss = 0;
          for (int64_t j = 0; j < hd; ++j) ss += sh[j] * sh[j];
          const float inv = 1.0f / std::sqrt(ss / static_cast<float>(hd) + kEps);
          for (int64_t j = 0; j < hd; ++j) o[h * hd + j] = sh[j] * inv * scale[j];
        }
      };
      put(src, q.data() + dst, lq);
      put(src + d, k.data() + dst, lk);
      std::memcpy(v.data() + dst, src + 2 * d, sizeof(float) * d);
    }
    off += t;
  }
}

}  // namespace

MmditTransformer::Stream MmditTransformer::load_stream(const WeightStore& w, const std::string& p, int64_t chunks,
                                                       bool pre_only) const {
  const int64_t d = cfg_.hidden();
  Stream s;
  s.mod = load_linear(w, p + "adaLN_modulation.1", chunks * d, d);
  s.qkv = load_linear(w, p + "attn.qkv", 3 * d, d);
  if (!cfg_.qk_norm.empty()) {
    s.ln_q = w.get(p + "attn.ln_q.weight", {cfg_.attention_head_dim});
    s.ln_k = w.get(p + "attn.ln_k.weight", {cfg_.attention_head_dim});
  }
  if (pre_only) return s;
  s.proj = load_linear(w, p + "attn.proj", d, d);
  const TensorInfo* f1 = w.find(p + "mlp.fc1.weight");
  const int64_t hidden = f1 && f1->shape.size() == 2 ? f1->shape[0] : 4 * d;  // mlp_ratio 4 in SD3
  s.fc1 = load_linear(w, p + "mlp.fc1", hidden, d);
  s.fc2 = load_linear(w, p + "mlp.fc2", d, hidden);
  return s;
}

MmditTransformer::MmditTransformer(const MmditConfig& cfg, const WeightStore& w) : cfg_(cfg) {
  const int64_t d = cfg.hidden(), p = cfg.patch_size, mx = cfg.pos_embed_max_size;
  patch_ = load_conv(w, "x_embedder.proj", d, cfg.in_channels, static_cast<int>(p), static_cast<int>(p), 0, 0);
  pos_embed_ = w.get("pos_embed", {1, mx * mx, d});
  t1_ = load_linear(w, "t_embedder.mlp.0", d, 256);
  t2_ = load_linear(w, "t_embedder.mlp.2", d, d);
  y1_ = load_linear(w, "y_embedder.mlp.0", d, cfg.pooled_projection_dim);
  y2_ = load_linear(w, "y_embedder.mlp.2", d, d);
  context_embedder_ = load_linear(w, "context_embedder", d, cfg.joint_attention_dim);
  for (int64_t i = 0; i < cfg.num_layers; ++i) {
    const std::string b = "joint_blocks." + std::to_string(i) + ".";
    Block B;
    B.dual = cfg.dual(i);
    B.pre_only = i + 1 == cfg.num_layers;  // the last block only lends the text k, v
    B.x = load_stream(w, b + "x_block.", B.dual ? 9 : 6, false);
    B.c = load_stream(w, b + "context_block.", B.pre_only ? 2 : 6, B.pre_only);
    if (B.dual) {
      B.qkv2 = load_linear(w, b + "x_block.attn2.qkv", 3 * d, d);
      B.proj2 = load_linear(w, b + "x_block.attn2.proj", d, d);
      if (!cfg.qk_norm.empty()) {
        B.ln_q2 = w.get(b + "x_block.attn2.ln_q.weight", {cfg.attention_head_dim});
        B.ln_k2 = w.get(b + "x_block.attn2.ln_k.weight", {cfg.attention_head_dim});
      }
    }
    blocks_.push_back(std::move(B));
  }
  final_mod_ = load_linear(w, "final_layer.adaLN_modulation.1", 2 * d, d);
  final_linear_ = load_linear(w, "final_layer.linear", p * p * cfg.out_channels, d);
  bf16_ = w.compute_bf16();
}

Tensor MmditTransformer::embed_time(const Tensor& pooled, const std::vector<float>& ts, int64_t batch) const {
  std::vector<float> t(static_cast<size_t>(batch));
  for (int64_t i = 0; i < batch; ++i) t[i] = ts.size() == 1 ? ts[0] : ts[i];
  Tensor h = t1_.forward(timestep_sinusoid(t.data(), batch, 256, true, 0.0f));
  activate_inplace(h, Act::kSilu);
  Tensor temb = t2_.forward(h);
  Tensor y = y1_.forward(pooled);
  activate_inplace(y, Act::kSilu);
  add_inplace(temb, y2_.forward(y));
  return temb;
}

void MmditTransformer::run_block(const Block& B, Tensor& x, Tensor& c, const Tensor& silu_temb) const {
  const int64_t heads = cfg_.num_attention_heads, tx = x.dim(1), tc = c.dim(1);
  const Tensor mx = B.x.mod.forward(silu_temb), mc = B.c.mod.forward(silu_temb);
  // Modulation chunks (Stability order): shift, scale, gate (attention), shift,
  // scale, gate (MLP), [MMDiT-X: shift, scale, gate (attn2)]; a pre-only text
  // stream has just shift, scale.
  Tensor nx2;
  Tensor qkv_x = B.x.qkv.forward(modulated_layer_norm(x, mx, 0, 1, B.dual ? &nx2 : nullptr, 6, 7));
  Tensor qkv_c = B.c.qkv.forward(modulated_layer_norm(c, mc, 0, 1));
  Tensor q, k, v;
  joint_qkv({{&qkv_x, &B.x.ln_q, &B.x.ln_k}, {&qkv_c, &B.c.ln_q, &B.c.ln_k}}, heads, q, k, v);
  qkv_x = qkv_c = Tensor();
  Tensor a = attention(q, k, v, static_cast<int>(heads), false, bf16_);  // [image, text] tokens
  q = k = v = Tensor();
  gated_add(x, B.x.proj.forward(slice_tokens(a, 0, tx)), mx, 2);
  Tensor ac = B.pre_only ? Tensor() : slice_tokens(a, tx, tc);
  a = Tensor();
  if (B.dual) {
    Tensor qkv2 = B.qkv2.forward(nx2);
    nx2 = Tensor();
    joint_qkv({{&qkv2, &B.ln_q2, &B.ln_k2}}, heads, q, k, v);
    qkv2 = Tensor();
    gated_add(x, B.proj2.forward(attention(q, k, v, static_cast<int>(heads), false, bf16_)), mx, 8);
  }
  gated_add(x, gelu_tanh_mlp(B.x.fc1, B.x.fc2, modulated_layer_norm(x, mx, 3, 4)), mx, 5);
  if (B.pre_only) return;
  gated_add(c, B.c.proj.forward(ac), mc, 2);
  ac = Tensor();
  gated_add(c, gelu_tanh_mlp(B.c.fc1, B.c.fc2, modulated_layer_norm(c, mc, 3, 4)), mc, 5);
}

Tensor MmditTransformer::forward(const Tensor& latents, const Tensor& context, const Tensor& pooled,
                                 const std::vector<float>& timestep, const std::vector<int>& skip_layers,
                                 MmditTrace* trace) const {
  const int64_t d = cfg_.hidden(), p = cfg_.patch_size, mx = cfg_.pos_embed_max_size;
  if (latents.rank() != 4 || latents.dim(3) != cfg_.in_channels)
    fail(ErrorCode::kInvalidArgument, "MMDiT latents must be NHWC [B,h,w," + std::to_string(cfg_.in_channels) +
                                          "], got " + shape_str(latents.shape()));
  const int64_t b = latents.dim(0), h = latents.dim(1), w = latents.dim(2);
  if (h % p || w % p)
    fail(ErrorCode::kInvalidArgument, "latent size " + std::to_string(h) + "x" + std::to_string(w) +
                                          " is not a multiple of the patch size " + std::to_string(p) +
                                          "; use an image size that is a multiple of " + std::to_string(8 * p));
  const int64_t hp = h / p, wp = w / p;
  if (hp > mx || wp > mx)
    fail(ErrorCode::kInvalidArgument, "latent size " + std::to_string(h) + "x" + std::to_string(w) +
                                          " exceeds this model's position table (" + std::to_string(mx * p) + "x" +
                                          std::to_string(mx * p) + " latents); use a smaller image");
  if (context.rank() != 3 || context.dim(0) != b || context.dim(2) != cfg_.joint_attention_dim)
    fail(ErrorCode::kInvalidArgument, "MMDiT context must be [" + std::to_string(b) + ",S," +
                                          std::to_string(cfg_.joint_attention_dim) + "], got " + shape_str(context.shape()));
  if (pooled.rank() != 2 || pooled.dim(0) != b || pooled.dim(1) != cfg_.pooled_projection_dim)
    fail(ErrorCode::kInvalidArgument, "MMDiT pooled embeds must be [" + std::to_string(b) + "," +
                                          std::to_string(cfg_.pooled_projection_dim) + "], got " + shape_str(pooled.shape()));
  if (timestep.size() != 1 && timestep.size() != static_cast<size_t>(b))
    fail(ErrorCode::kInvalidArgument, "MMDiT needs 1 or " + std::to_string(b) + " timesteps, got " +
                                          std::to_string(timestep.size()));
  for (int s : skip_layers)
    if (s < 0 || s >= cfg_.num_layers)
      fail(ErrorCode::kInvalidArgument, "skip layer " + std::to_string(s) + " is not a block of this model (0.." +
                                            std::to_string(cfg_.num_layers - 1) + ")");

  // Patch embedding + the centre crop of the sin-cos table.
  Tensor x = patch_.forward(latents).reshape({b, hp * wp, d});
  const int64_t top = (mx - hp) / 2, left = (mx - wp) / 2;
#pragma omp parallel for
  for (int64_t r = 0; r < b * hp * wp; ++r) {
    const int64_t i = (r % (hp * wp)) / wp, j = r % wp;
    const float* pe = pos_embed_.data() + ((top + i) * mx + left + j) * d;
    float* xr = x.data() + r * d;
    for (int64_t k = 0; k < d; ++k) xr[k] += pe[k];
  }
  Tensor temb = embed_time(pooled, timestep, b);
  Tensor c = context_embedder_.forward(context);
  if (trace) {
    trace->patch_embed = x.clone();
    trace->temb = temb.clone();
    trace->context_embedder = c.clone();
  }
  activate_inplace(temb, Act::kSilu);  // every modulation reads SiLU(temb)
  for (size_t i = 0; i < blocks_.size(); ++i) {
    if (std::find(skip_layers.begin(), skip_layers.end(), static_cast<int>(i)) == skip_layers.end())
      run_block(blocks_[i], x, c, temb);
    if (trace) {
      trace->block_hidden.push_back(x.clone());
      trace->block_context.push_back(blocks_[i].pre_only ? Tensor() : c.clone());
    }
  }
  c = Tensor();
  Tensor n = modulated_layer_norm(x, final_mod_.forward(temb), 0, 1);  // Stability order: shift, scale
  if (trace) trace->norm_out = n.clone();
  x = Tensor();
  const Tensor tok = final_linear_.forward(n);  // [B, T, p*p*C]
  const int64_t oc = cfg_.out_channels;
  Tensor out({b, h, w, oc});
#pragma omp parallel for
  for (int64_t r = 0; r < b * hp * wp; ++r) {  // (hh, ww, pi, qi, c) -> NHWC
    const int64_t bi = r / (hp * wp), hh = (r % (hp * wp)) / wp, ww = r % wp;
    const float* src = tok.data() + r * p * p * oc;
    for (int64_t pi = 0; pi < p; ++pi)
      for (int64_t qi = 0; qi < p; ++qi)
        std::memcpy(out.data() + ((bi * h + hh * p + pi) * w + ww * p + qi) * oc, src + (pi * p + qi) * oc,
                    sizeof(float) * oc);
  }
  return out;
}

}  // namespace vg
