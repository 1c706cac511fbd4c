#include "models/qwenimage.h"

#include <algorithm>
#include <cmath>
#include <optional>

#include "core/error.h"
#include "models/dit_blocks.h"
#include "io/derived_weights.h"

namespace vg {

namespace {

constexpr float kEps = 1e-6f;  // txt_norm, the q/k RMSNorms

// q/k/v of each stream as one Linear: "attn.qkv" (image) and "attn.add_qkv"
// (text) answer the rows of to_q/to_k/to_v and add_q/k/v_proj.
std::optional<DerivedSource> fused_qkv(const std::string& name) {
  const size_t at = name.find(".attn.");
  if (at == std::string::npos) return std::nullopt;
  const std::string p = name.substr(0, at + 6), rest = name.substr(at + 6);
  for (const char* x : {".weight", ".bias"}) {
    if (rest == std::string("qkv") + x) return DerivedSource{{p + "to_q" + x, p + "to_k" + x, p + "to_v" + x}};
    if (rest == std::string("add_qkv") + x)
      return DerivedSource{{p + "add_q_proj" + x, p + "add_k_proj" + x, p + "add_v_proj" + x}};
  }
  return std::nullopt;
}

// diffusers RMSNorm (float32, weight after the normalisation) of x [B, S, C].
Tensor rms_norm(const Tensor& x, const Tensor& w) {
  const int64_t c = x.dim(2);
  Tensor out(x.shape());
#pragma omp parallel for
  for (int64_t r = 0; r < x.numel() / c; ++r) {
    const float* a = x.data() + r * c;
    double sq = 0;
    for (int64_t j = 0; j < c; ++j) sq += static_cast<double>(a[j]) * a[j];
    const float inv = 1.0f / std::sqrt(static_cast<float>(sq / c) + kEps);
    float* o = out.data() + r * c;
    for (int64_t j = 0; j < c; ++j) o[j] = (a[j] * inv) * w.data()[j];
  }
  return out;
}

// Rows [begin, begin+n) of a [T, hd] table.
Tensor rows(const Tensor& t, int64_t begin, int64_t n) {
  return slice_tokens(t.reshape({1, t.dim(0), t.dim(1)}), begin, n).reshape({n, t.dim(1)});
}

}  // namespace

Tensor qwenimage_positions(int64_t h, int64_t w, int64_t s) {
  Tensor pos({s + h * w, 3});
  float* p = pos.data();
  const int64_t t0 = std::max(h / 2, w / 2);
  for (int64_t j = 0; j < s; ++j) p[j * 3] = p[j * 3 + 1] = p[j * 3 + 2] = static_cast<float>(t0 + j);
  for (int64_t r = 0; r < h; ++r)
    for (int64_t c = 0; c < w; ++c) {
      float* q = p + (s + r * w + c) * 3;
      q[0] = 0.0f;  // one frame
      q[1] = static_cast<float>(r - (h - h / 2));
      q[2] = static_cast<float>(c - (w - w / 2));
    }
  return pos;
}

QwenImageTransformer::QwenImageTransformer(const QwenImageConfig& cfg, const WeightStore& store)
    : cfg_(cfg), bf16_(store.compute_bf16()) {
  cfg.validate("Qwen-Image transformer config");
  const WeightStore w = derive_weights(store, fused_qkv, "Qwen-Image transformer");
  const int64_t d = cfg.inner_dim(), hd = cfg.attention_head_dim, m = 4 * d;  // FeedForward mult 4
  img_in_ = load_linear(w, "img_in", d, cfg.in_channels);
  txt_norm_ = w.get("txt_norm.weight", {cfg.joint_attention_dim});
  txt_in_ = load_linear(w, "txt_in", d, cfg.joint_attention_dim);
  time_1_ = load_linear(w, "time_text_embed.timestep_embedder.linear_1", d, 256);
  time_2_ = load_linear(w, "time_text_embed.timestep_embedder.linear_2", d, d);
  for (int64_t i = 0; i < cfg.num_layers; ++i) {
    const std::string p = "transformer_blocks." + std::to_string(i) + ".";
    Block blk;
    for (Stream* st : {&blk.img, &blk.txt}) {
      const bool img = st == &blk.img;
      const std::string s = img ? "img" : "txt";
      st->mod = load_linear(w, p + s + "_mod.1", 6 * d, d);
      st->qkv = load_linear(w, p + (img ? "attn.qkv" : "attn.add_qkv"), 3 * d, d);
      st->q_norm = w.get(p + (img ? "attn.norm_q.weight" : "attn.norm_added_q.weight"), {hd});
      st->k_norm = w.get(p + (img ? "attn.norm_k.weight" : "attn.norm_added_k.weight"), {hd});
      st->out = load_linear(w, p + (img ? "attn.to_out.0" : "attn.to_add_out"), d, d);
      st->mlp0 = load_linear(w, p + s + "_mlp.net.0.proj", m, d);
      st->mlp2 = load_linear(w, p + s + "_mlp.net.2", d, m);
    }
    blocks_.push_back(std::move(blk));
  }
  norm_out_ = load_linear(w, "norm_out.linear", 2 * d, d);  // (scale, shift)
  proj_out_ = load_linear(w, "proj_out", cfg.out_features(), d);
}

void QwenImageTransformer::block(const Block& blk, Tensor& img, Tensor& txt, const Tensor& temb_silu,
                                 const Tensor& cos, const Tensor& sin) const {
  const int64_t b = img.dim(0), l = img.dim(1), s = txt.dim(1), d = img.dim(2);
  const int64_t heads = cfg_.num_attention_heads;
  // mod chunks: (shift1, scale1, gate1, shift2, scale2, gate2)
  const Tensor mi = blk.img.mod.forward(temb_silu), mt = blk.txt.mod.forward(temb_silu);
  Tensor q({b, s + l, d}), k({b, s + l, d}), v({b, s + l, d});
  {
    const Tensor qkv_t = blk.txt.qkv.forward(modulated_layer_norm(txt, mt, 0, 1));
    const Tensor qkv_i = blk.img.qkv.forward(modulated_layer_norm(img, mi, 0, 1));
    split_qkv_rope(qkv_t, 0, blk.txt.q_norm, blk.txt.k_norm, kEps, cos, sin, heads, q, k, v);  // text first
    split_qkv_rope(qkv_i, s, blk.img.q_norm, blk.img.k_norm, kEps, cos, sin, heads, q, k, v);
  }
  const Tensor a = attention(q, k, v, static_cast<int>(heads), false, bf16_);
  gated_add(img, blk.img.out.forward(slice_tokens(a, s, l)), mi, 2);
  gated_add(txt, blk.txt.out.forward(slice_tokens(a, 0, s)), mt, 2);
  gated_add(img, gelu_tanh_mlp(blk.img.mlp0, blk.img.mlp2, modulated_layer_norm(img, mi, 3, 4)), mi, 5);
  gated_add(txt, gelu_tanh_mlp(blk.txt.mlp0, blk.txt.mlp2, modulated_layer_norm(txt, mt, 3, 4)), mt, 5);
}

Tensor QwenImageTransformer::forward(const Tensor& img_in, const Tensor& txt_in, float timestep, int64_t h,
                                     int64_t w, QwenImageTrace* trace) const {
  auto bad = [](const std::string& what) {
    fail(ErrorCode::kShapeMismatch, "Qwen-Image transformer: " + what);
  };
  if (h <= 0 || w <= 0)
    bad("the token grid must be positive, got " + std::to_string(h) + "x" + std::to_string(w));
  if (img_in.rank() != 3 || img_in.dim(0) < 1 || img_in.dim(1) != h * w || img_in.dim(2) != cfg_.in_channels)
    bad("image tokens must be [B, " + std::to_string(h * w) + ", " + std::to_string(cfg_.in_channels) +
        "] (packed latents of a " + std::to_string(h) + "x" + std::to_string(w) + " token grid), got " +
        shape_str(img_in.shape()));
  const int64_t b = img_in.dim(0), l = h * w;
  if (txt_in.rank() != 3 || txt_in.dim(0) != b || txt_in.dim(1) < 1 ||
      txt_in.dim(2) != cfg_.joint_attention_dim)
    bad("text states must be [" + std::to_string(b) + ", S >= 1, " +
        std::to_string(cfg_.joint_attention_dim) + "] (Qwen2.5-VL output), got " + shape_str(txt_in.shape()) +
        "; is the right text encoder loaded?");
  if (!std::isfinite(timestep))
    fail(ErrorCode::kInvalidArgument, "Qwen-Image transformer: the timestep is not a finite number");
  const int64_t s = txt_in.dim(1);
  // time_text_embed: Timesteps(256, flip_sin_to_cos, shift 0, scale 1000), MLP
  const std::vector<float> ts(static_cast<size_t>(b), timestep);
  Tensor temb = time_1_.forward(timestep_sinusoid(ts.data(), b, 256, true, 0.0f, 1000.0f));
  activate_inplace(temb, Act::kSilu);
  temb = time_2_.forward(temb);
  const Tensor temb_silu = activate(temb, Act::kSilu);  // every modulation applies SiLU first
  Tensor cos, sin;
  const Tensor pos = qwenimage_positions(h, w, s);
  rope_tables(pos.data(), s + l, cfg_.axes_dims_rope, 10000.0, false, cos, sin);  // float32 angles
  Tensor img = img_in_.forward(img_in);
  const Tensor tn = rms_norm(txt_in, txt_norm_);
  Tensor txt = txt_in_.forward(tn);
  if (trace) {
    *trace = QwenImageTrace{};
    trace->temb = temb;
    trace->img_in = img.clone();
    trace->txt_norm = tn;
    trace->txt_in = txt.clone();
    trace->txt_rope_cos = rows(cos, 0, s);
    trace->txt_rope_sin = rows(sin, 0, s);
    trace->img_rope_cos = rows(cos, s, l);
    trace->img_rope_sin = rows(sin, s, l);
  }
  for (const Block& blk : blocks_) {
    block(blk, img, txt, temb_silu, cos, sin);
    if (trace) {
      trace->block_txt.push_back(txt.clone());
      trace->block_img.push_back(img.clone());
    }
  }
  // AdaLayerNormContinuous: chunks (scale, shift)
  const Tensor n = modulated_layer_norm(img, norm_out_.forward(temb_silu), 1, 0);
  if (trace) trace->norm_out = n;
  return proj_out_.forward(n);
}

}  // namespace vg
