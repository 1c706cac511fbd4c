#include "models/flux.h"

#include <cmath>
#include <cstring>

#include "backend/cpu/vec_math.h"
#include "core/error.h"
#include "core/profile.h"
#include "models/dit_blocks.h"

namespace vg {

namespace {

constexpr float kNormEps = 1e-6f;

// diffusers Timesteps(256, flip_sin_to_cos=True, shift 0) of v*1000: [cos, sin].
Tensor sinusoid256(const std::vector<float>& values, int64_t batch) {
  std::vector<float> t(static_cast<size_t>(batch));
  for (int64_t b = 0; b < batch; ++b) t[b] = (values.size() == 1 ? values[0] : values[b]) * 1000.0f;
  return timestep_sinusoid(t.data(), batch, 256, true, 0.0f);
}

// RoPE tables for cat(txt_ids, img_ids): angles in float64 (as diffusers on CPU).
void rope_tables(const Tensor& txt_ids, const Tensor& img_ids, const std::vector<int64_t>& axes, Tensor& cos,
                 Tensor& sin) {
  const Tensor ids = concat_tokens(txt_ids.reshape({1, txt_ids.dim(0), txt_ids.dim(1)}),
                                   img_ids.reshape({1, img_ids.dim(0), img_ids.dim(1)}));
  rope_tables(ids.data(), ids.dim(1), axes, 10000.0, true, cos, sin);
}

}  // namespace

FluxTransformer::FluxTransformer(const FluxConfig& cfg, const WeightStore& w)
    : cfg_(cfg), bf16_(w.compute_bf16()) {
  cfg.validate("FLUX transformer config");
  const int64_t d = cfg.inner_dim(), hd = cfg.attention_head_dim, m = 4 * d;  // diffusers: mlp ratio 4
  img_in_ = load_linear(w, "img_in", d, cfg.in_channels);
  txt_in_ = load_linear(w, "txt_in", d, cfg.joint_attention_dim);
  time_1_ = load_linear(w, "time_in.in_layer", d, 256);
  time_2_ = load_linear(w, "time_in.out_layer", d, d);
  if (cfg.guidance_embeds) {
    guidance_1_ = load_linear(w, "guidance_in.in_layer", d, 256);
    guidance_2_ = load_linear(w, "guidance_in.out_layer", d, d);
  }
  vector_1_ = load_linear(w, "vector_in.in_layer", d, cfg.pooled_projection_dim);
  vector_2_ = load_linear(w, "vector_in.out_layer", d, d);
  for (int64_t i = 0; i < cfg.num_layers; ++i) {
    const std::string p = "double_blocks." + std::to_string(i) + ".";
    DoubleBlock blk;
    for (const char* s : {"img", "txt"}) {
      Stream& st = std::string(s) == "img" ? blk.img : blk.txt;
      const std::string q = p + s;
      st.mod = load_linear(w, q + "_mod.lin", 6 * d, d);
      st.qkv = load_linear(w, q + "_attn.qkv", 3 * d, d);
      st.q_norm = w.get(q + "_attn.norm.query_norm.scale", {hd});
      st.k_norm = w.get(q + "_attn.norm.key_norm.scale", {hd});
      st.proj = load_linear(w, q + "_attn.proj", d, d);
      st.mlp0 = load_linear(w, q + "_mlp.0", m, d);
      st.mlp2 = load_linear(w, q + "_mlp.2", d, m);
    }
    double_.push_back(std::move(blk));
  }
  for (int64_t i = 0; i < cfg.num_single_layers; ++i) {
    const std::string p = "single_blocks." + std::to_string(i) + ".";
    SingleBlock blk;
    blk.mod = load_linear(w, p + "modulation.lin", 3 * d, d);
    blk.linear1 = load_linear(w, p + "linear1", 3 * d + m, d);  // q; k; v; mlp in one GEMM
    blk.linear2 = load_linear(w, p + "linear2", d, d + m);
    blk.q_norm = w.get(p + "norm.query_norm.scale", {hd});
    blk.k_norm = w.get(p + "norm.key_norm.scale", {hd});
    single_.push_back(std::move(blk));
  }
  final_mod_ = load_linear(w, "final_layer.adaLN_modulation.1", 2 * d, d);  // (shift, scale)
  final_linear_ = load_linear(w, "final_layer.linear", cfg.out_channels, d);
}

Tensor FluxTransformer::conditioning(const Tensor& pooled, const std::vector<float>& ts,
                                     const std::vector<float>& guidance, int64_t b) const {
  Tensor h = time_1_.forward(sinusoid256(ts, b));
  activate_inplace(h, Act::kSilu);
  Tensor temb = time_2_.forward(h);
  if (cfg_.guidance_embeds) {
    Tensor g = guidance_1_.forward(sinusoid256(guidance, b));
    activate_inplace(g, Act::kSilu);
    add_inplace(temb, guidance_2_.forward(g));
  }
  Tensor v = vector_1_.forward(pooled);
  activate_inplace(v, Act::kSilu);
  add_inplace(temb, vector_2_.forward(v));
  return temb;
}

void FluxTransformer::double_block(const DoubleBlock& blk, Tensor& img, Tensor& txt, const Tensor& temb_silu,
                                   const Tensor& cos, const Tensor& sin) const {
  const int64_t b = img.dim(0), l = img.dim(1), s = txt.dim(1), d = img.dim(2);
  const Tensor mi = blk.img.mod.forward(temb_silu), mt = blk.txt.mod.forward(temb_silu);
  Tensor q({b, s + l, d}), k({b, s + l, d}), v({b, s + l, d});
  {
    const Tensor qkv_t = blk.txt.qkv.forward(modulated_layer_norm(txt, mt, 0, 1));
    const Tensor qkv_i = blk.img.qkv.forward(modulated_layer_norm(img, mi, 0, 1));
    const int64_t heads = cfg_.num_attention_heads;
    scatter_qkv(qkv_t, 0, blk.txt.q_norm, blk.txt.k_norm, cos, sin, heads, kNormEps, q, k, v);  // text first
    scatter_qkv(qkv_i, s, blk.img.q_norm, blk.img.k_norm, cos, sin, heads, kNormEps, q, k, v);
  }
  const Tensor a = attention(q, k, v, static_cast<int>(cfg_.num_attention_heads), false, bf16_);
  gated_add(img, blk.img.proj.forward(slice_tokens(a, s, l)), mi, 2);
  gated_add(txt, blk.txt.proj.forward(slice_tokens(a, 0, s)), mt, 2);
  gated_add(img, gelu_tanh_mlp(blk.img.mlp0, blk.img.mlp2, modulated_layer_norm(img, mi, 3, 4)), mi, 5);
  gated_add(txt, gelu_tanh_mlp(blk.txt.mlp0, blk.txt.mlp2, modulated_layer_norm(txt, mt, 3, 4)), mt, 5);
}

void FluxTransformer::single_block(const SingleBlock& blk, Tensor& x, const Tensor& temb_silu,
                                   const Tensor& cos, const Tensor& sin) const {
  const int64_t b = x.dim(0), t = x.dim(1), d = x.dim(2), m = 4 * d;
  const Tensor mod = blk.mod.forward(temb_silu);
  const Tensor h = blk.linear1.forward(modulated_layer_norm(x, mod, 0, 1));  // [B, T, 3D + M]
  Tensor cat({b, t, d + m});  // linear2's input: [attention, gelu(mlp)]
  {
    Tensor q({b, t, d}), k({b, t, d}), v({b, t, d});
    scatter_qkv(h, 0, blk.q_norm, blk.k_norm, cos, sin, cfg_.num_attention_heads, kNormEps, q, k, v);
    const Tensor a = attention(q, k, v, static_cast<int>(cfg_.num_attention_heads), false, bf16_);
    profile::Scope prof_("flux_gelu_cat");
#pragma omp parallel for
    for (int64_t r = 0; r < b * t; ++r) {
      float* o = cat.data() + r * (d + m);
      const float* hm = h.data() + r * (3 * d + m) + 3 * d;
      std::memcpy(o, a.data() + r * d, d * sizeof(float));
      vec::gelu_tanh(hm, o + d, m);
    }
  }
  gated_add(x, blk.linear2.forward(cat), mod, 2);
}

Tensor FluxTransformer::forward(const Tensor& img_in, const Tensor& txt_in, const Tensor& pooled,
                                const std::vector<float>& timestep, const std::vector<float>& guidance,
                                const Tensor& img_ids, const Tensor& txt_ids, FluxTrace* trace) const {
  const int64_t b = img_in.dim(0), l = img_in.rank() == 3 ? img_in.dim(1) : 0;
  const int64_t s = txt_in.rank() == 3 ? txt_in.dim(1) : 0;
  const int64_t na = static_cast<int64_t>(cfg_.axes_dims_rope.size());
  auto bad = [](const std::string& what) { fail(ErrorCode::kShapeMismatch, "FLUX transformer: " + what); };
  if (img_in.rank() != 3 || img_in.dim(2) != cfg_.in_channels)
    bad("image tokens must be [B, L, " + std::to_string(cfg_.in_channels) + "] (packed latents), got " +
        shape_str(img_in.shape()));
  if (txt_in.rank() != 3 || txt_in.dim(0) != b || txt_in.dim(2) != cfg_.joint_attention_dim)
    bad("text states must be [B, S, " + std::to_string(cfg_.joint_attention_dim) + "] (T5 output), got " +
        shape_str(txt_in.shape()) + " for batch " + std::to_string(b) +
        "; is the right text encoder loaded?");
  if (pooled.rank() != 2 || pooled.dim(0) != b || pooled.dim(1) != cfg_.pooled_projection_dim)
    bad("pooled text must be [B, " + std::to_string(cfg_.pooled_projection_dim) + "] (CLIP pooled), got " +
        shape_str(pooled.shape()));
  if (img_ids.rank() != 2 || img_ids.dim(0) != l || img_ids.dim(1) != na || txt_ids.rank() != 2 ||
      txt_ids.dim(0) != s || txt_ids.dim(1) != na)
    bad("position ids must be [L, " + std::to_string(na) + "] and [S, " + std::to_string(na) + "], got " +
        shape_str(img_ids.shape()) + " and " + shape_str(txt_ids.shape()));
  auto per_batch = [&](const std::vector<float>& v) {
    return v.size() == 1 || static_cast<int64_t>(v.size()) == b;
  };
  if (!per_batch(timestep))
    fail(ErrorCode::kInvalidArgument, "FLUX transformer: give 1 or " + std::to_string(b) +
                                          " timesteps, got " + std::to_string(timestep.size()));
  if (cfg_.guidance_embeds && !per_batch(guidance))
    fail(ErrorCode::kInvalidArgument,
         "this FLUX transformer is guidance-distilled (FLUX.1-dev style) and needs a "
         "guidance value (1 or batch many, e.g. 3.5); got " +
             std::to_string(guidance.size()));
  Tensor temb = conditioning(pooled, timestep, guidance, b);
  Tensor temb_silu = activate(temb, Act::kSilu);  // every modulation applies SiLU first
  Tensor cos, sin;
  rope_tables(txt_ids, img_ids, cfg_.axes_dims_rope, cos, sin);
  Tensor img = img_in_.forward(img_in), txt = txt_in_.forward(txt_in);
  if (trace) {
    *trace = FluxTrace{};
    trace->temb = temb;
    trace->x_embedder = img.clone();
    trace->context_embedder = txt.clone();
    trace->rope_cos = cos;
    trace->rope_sin = sin;
  }
  for (const DoubleBlock& blk : double_) {
    double_block(blk, img, txt, temb_silu, cos, sin);
    if (trace) {
      trace->double_img.push_back(img.clone());
      trace->double_txt.push_back(txt.clone());
    }
  }
  Tensor x = concat_tokens(txt, img);  // the joint stream, text first
  txt = img = Tensor();
  for (const SingleBlock& blk : single_) {
    single_block(blk, x, temb_silu, cos, sin);
    if (trace) {
      trace->single_txt.push_back(slice_tokens(x, 0, s).clone());
      trace->single_img.push_back(slice_tokens(x, s, l).clone());
    }
  }
  const Tensor mod = final_mod_.forward(temb_silu);
  const Tensor n = modulated_layer_norm(slice_tokens(x, s, l), mod, 0, 1);  // BFL order: (shift, scale)
  if (trace) trace->norm_out = n;
  return final_linear_.forward(n);
}

}  // namespace vg
