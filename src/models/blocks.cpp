#include "models/blocks.h"

#include "backend/cpu/bf16.h"
#include "core/error.h"
#include "lora/layer_registry.h"
#include "quant/ggml_types.h"
#include "quant/quantize.h"

#include <cmath>
#include <optional>

namespace vg {

Conv2d load_conv(const WeightStore& w, const std::string& name, int64_t out, int64_t in, int k,
                 int stride, int pad_l, int pad_r) {
  Tensor bias = w.has(name + ".bias") ? w.get(name + ".bias", {out}) : Tensor();
  const Shape shape{out, in, k, k};
  const std::string wn = name + ".weight";
  w.check(wn, shape);  // a missing or misshapen weight fails at load; converted at first use
  LayerPatch::Source source = weight_source(w, wn, shape);
  Conv2d conv(shape, source, std::move(bias), stride, pad_l, pad_r, w.compute_bf16());
  if (const auto& reg = w.layer_registry()) conv.attach_patch(reg->get_or_add(name, shape, std::move(source)));
  return conv;
}

namespace {

// The weight of a linear as ggml blocks when it should compute from them: a
// GGUF block-type entry (unless the store asks for dequantised float32), or,
// in benchmark mode with a synthetic quant type, the synthetic weight
// quantised as stable-diffusion.cpp would (whole blocks per row; not the
// time/label embeddings).
std::optional<QMatrix> quantized_weight(const WeightStore& w, const std::string& wn, int64_t out, int64_t in) {
  if (const int st = w.synthetic_quant(); st >= 0) {
    const GgmlTypeInfo* t = ggml_type_info(st);
    if (!t || in % t->block_elems != 0 || w.find(wn) || wn.find("time_embedding") != std::string::npos ||
        wn.find("add_embedding") != std::string::npos)
      return std::nullopt;
    const Tensor f = w.get(wn, {out, in});
    const size_t rb = ggml_row_bytes(st, in);
    auto buf = std::shared_ptr<uint8_t[]>(new uint8_t[rb * static_cast<size_t>(out)]);
#pragma omp parallel for schedule(dynamic)
    for (int64_t r = 0; r < out; ++r) quantize_row(st, f.data() + r * in, buf.get() + rb * static_cast<size_t>(r), in);
    return QMatrix{st, buf.get(), out, in, buf};
  }
  if (w.dequantize_blocks()) return std::nullopt;
  const TensorInfo* ti = w.check(wn, {out, in});
  if (!ti || ti->dtype != DType::kQuant || shape_numel(ti->shape) != out * in) return std::nullopt;
  const GgmlTypeInfo* t = ggml_type_info(ti->ggml_type);
  if (!t || !t->dequantizable || ti->shape.back() != in || in % t->block_elems != 0) return std::nullopt;
  return QMatrix{ti->ggml_type, ti->data, out, in, w.shared()};
}

}  // namespace

Linear load_linear(const WeightStore& w, const std::string& name, int64_t out, int64_t in,
                   bool bias) {
  Tensor b = (bias && w.has(name + ".bias")) ? w.get(name + ".bias", {out}) : Tensor();
  std::optional<QMatrix> q = quantized_weight(w, name + ".weight", out, in);
  Linear lin = q                ? Linear(std::move(*q), std::move(b))
               : w.compute_bf16() ? Linear(w.get_bf16(name + ".weight", {out, in}), out, in, std::move(b))
                                  : Linear(w.get(name + ".weight", {out, in}), std::move(b));
  if (const auto& reg = w.layer_registry())
    lin.attach_patch(reg->get_or_add(name, {out, in}, weight_source(w, name + ".weight", {out, in})));
  return lin;
}

// diffusers get_timestep_embedding for `n` values of dimension `dim`.
Tensor timestep_sinusoid(const float* values, int64_t n, int64_t dim, bool flip, float shift,
                         float scale) {
  const int64_t half = dim / 2;
  Tensor out = Tensor::zeros({n, dim});
  const float log_max = static_cast<float>(std::log(10000.0));
  for (int64_t b = 0; b < n; ++b) {
    const float t = values[b];
    for (int64_t i = 0; i < half; ++i) {
      // float32 arithmetic in the same order as diffusers' get_timestep_embedding.
      float exponent = -log_max * static_cast<float>(i);
      exponent = exponent / (static_cast<float>(half) - shift);
      const float arg = scale * (t * std::exp(exponent));  // scale 1: exactly t * freq
      const float s = std::sin(arg), c = std::cos(arg);
      out.data()[b * dim + i] = flip ? c : s;
      out.data()[b * dim + half + i] = flip ? s : c;
    }
  }
  return out;
}

LayerPatch::Source weight_source(const WeightStore& w, const std::string& weight_name, const Shape& shape) {
  auto store = w.shared();
  return [store, weight_name, shape](Tensor* f32, std::vector<uint16_t>* bf16) {
    if (f32) *f32 = store->get(weight_name, shape);
    else *bf16 = store->get_bf16(weight_name, shape);
  };
}

void GroupNormParams::load(const WeightStore& w, const std::string& name, int64_t c, int g,
                           float e) {
  weight = w.get(name + ".weight", {c});
  bias = w.get(name + ".bias", {c});
  groups = g;
  eps = e;
  if (c % g != 0)
    fail(ErrorCode::kShapeMismatch, name + ": " + std::to_string(c) +
                                        " channels are not divisible into " + std::to_string(g) +
                                        " groups; check norm_num_groups in config.json");
}

ResnetBlock::ResnetBlock(const WeightStore& w, const std::string& p, int64_t in, int64_t out,
                         int64_t temb_dim, int groups, float eps) {
  norm1_.load(w, p + "norm1", in, groups, eps);
  norm2_.load(w, p + "norm2", out, groups, eps);
  conv1_ = load_conv(w, p + "conv1", out, in, 3, 1, 1, 1);
  conv2_ = load_conv(w, p + "conv2", out, out, 3, 1, 1, 1);
  if (temb_dim > 0) temb_proj_ = load_linear(w, p + "time_emb_proj", out, temb_dim);
  if (in != out) shortcut_ = load_conv(w, p + "conv_shortcut", out, in, 1, 1, 0, 0);
}

Tensor ResnetBlock::forward(Tensor x, const Tensor& temb_silu) const {
  if (conv1_.bf16() && conv2_.bf16()) {
    // GroupNorm writes the convolutions' bf16 inputs directly: no float32 copies
    const int64_t n = x.dim(0), hh = x.dim(1), ww = x.dim(2);
    group_norm_to_bf16(x, norm1_.groups, norm1_.weight, norm1_.bias, norm1_.eps, true, bf16_scratch(0, x.numel()));
    Tensor h = conv1_.forward_bf16_input(bf16_scratch(0, x.numel()), n, hh, ww);
    if (temb_proj_.loaded() && !temb_silu.empty()) add_per_channel_inplace(h, temb_proj_.forward(temb_silu));
    Tensor residual = shortcut_.loaded() ? shortcut_.forward(x) : x.sole_owner() ? std::move(x) : x.clone();
    x = Tensor();
    group_norm_to_bf16(h, norm2_.groups, norm2_.weight, norm2_.bias, norm2_.eps, true, bf16_scratch(0, h.numel()));
    const int64_t hn = h.numel();
    h = Tensor();
    return conv2_.forward_bf16_input(bf16_scratch(0, hn), n, hh, ww, &residual);
  }
  // With a shortcut convolution, x is needed only for it: run it first, then
  // normalise x in place (one full-size buffer fewer at the peak).
  Tensor residual = shortcut_.loaded() ? shortcut_.forward(x) : Tensor();
  Tensor h;
  if (shortcut_.loaded() && x.sole_owner()) {
    group_norm_inplace(x, norm1_.groups, norm1_.weight, norm1_.bias, norm1_.eps, true);
    h = conv1_.forward(x);
    x = Tensor();
  } else {
    h = conv1_.forward(norm1_(x, true));
  }
  if (temb_proj_.loaded() && !temb_silu.empty()) add_per_channel_inplace(h, temb_proj_.forward(temb_silu));
  group_norm_inplace(h, norm2_.groups, norm2_.weight, norm2_.bias, norm2_.eps, true);  // h is ours alone
  if (residual.empty()) residual = x.sole_owner() ? std::move(x) : x.clone();
  x = Tensor();
  return conv2_.forward(h, &residual);
}

double ResnetBlock::flops(int64_t n, int64_t h, int64_t w) const {
  return conv1_.flops(n, h, w) + conv2_.flops(n, h, w) +
         (shortcut_.loaded() ? shortcut_.flops(n, h, w) : 0.0);
}

AttentionLayer::AttentionLayer(const WeightStore& w, const std::string& p, int64_t qd, int64_t cd,
                               int heads, int64_t hd)
    : heads_(heads) {
  const int64_t inner = heads * hd;
  q_ = load_linear(w, p + "to_q", inner, qd);
  k_ = load_linear(w, p + "to_k", inner, cd);
  v_ = load_linear(w, p + "to_v", inner, cd);
  out_ = load_linear(w, p + "to_out.0", qd, inner);
}

Tensor AttentionLayer::forward(const Tensor& x, const Tensor& context) const {
  const Tensor& src = context.empty() ? x : context;
  Tensor a = attention(q_.forward(x), k_.forward(src), v_.forward(src), heads_, false, q_.bf16());
  return out_.forward(a);
}

SpatialTransformer::SpatialTransformer(const WeightStore& w, const std::string& p, int64_t c,
                                       int heads, int64_t hd, int64_t cd, int layers,
                                       bool linear_proj, int groups)
    : channels_(c), context_dim_(cd), inner_(heads * hd) {
  norm_.load(w, p + "norm", c, groups, 1e-6f);
  // proj_in/out are 1x1 convs or linears; both act per token in NHWC.
  proj_in_ = load_linear(w, p + "proj_in", inner_, c);
  proj_out_ = load_linear(w, p + "proj_out", c, inner_);
  (void)linear_proj;
  for (int i = 0; i < layers; ++i) {
    std::string b = p + "transformer_blocks." + std::to_string(i) + ".";
    Block B;
    B.n1w = w.get(b + "norm1.weight", {inner_});
    B.n1b = w.get(b + "norm1.bias", {inner_});
    B.n2w = w.get(b + "norm2.weight", {inner_});
    B.n2b = w.get(b + "norm2.bias", {inner_});
    B.n3w = w.get(b + "norm3.weight", {inner_});
    B.n3b = w.get(b + "norm3.bias", {inner_});
    B.attn1 = AttentionLayer(w, b + "attn1.", inner_, inner_, heads, hd);
    B.attn2 = AttentionLayer(w, b + "attn2.", inner_, cd, heads, hd);
    B.ff_in = load_linear(w, b + "ff.net.0.proj", inner_ * 8, inner_);
    B.ff_out = load_linear(w, b + "ff.net.2", inner_, inner_ * 4);
    blocks_.push_back(std::move(B));
  }
}

Tensor SpatialTransformer::forward(const Tensor& x, const Tensor& context) const {
  const int64_t n = x.dim(0), h = x.dim(1), wd = x.dim(2);
  Tensor t = proj_in_.forward(norm_(x, false)).reshape({n, h * wd, inner_});
  for (const Block& B : blocks_) {
    add_inplace(t, B.attn1.forward(layer_norm(t, B.n1w, B.n1b, 1e-5f), Tensor()));
    add_inplace(t, B.attn2.forward(layer_norm(t, B.n2w, B.n2b, 1e-5f), context));
    add_inplace(t, B.ff_out.forward(geglu(B.ff_in.forward(layer_norm(t, B.n3w, B.n3b, 1e-5f)))));
  }
  Tensor out = proj_out_.forward(t).reshape({n, h, wd, channels_});
  add_inplace(out, x);
  return out;
}

double SpatialTransformer::flops(int64_t n, int64_t h, int64_t w, int64_t s) const {
  const double t = static_cast<double>(n * h * w), c = static_cast<double>(inner_);
  double f = 2 * t * channels_ * c * 2;  // proj in/out
  for (size_t i = 0; i < blocks_.size(); ++i) {
    f += 2 * t * c * c * 4;                          // self q,k,v,out
    f += 2 * 2 * t * static_cast<double>(h * w) * c; // QK^T and PV
    f += 2 * t * c * c * 2 + 2 * 2 * n * s * context_dim_ * c;  // cross q,out + k,v
    f += 2 * 2 * t * s * c;
    f += 2 * t * c * c * 8 + 2 * t * c * 4 * c;      // GEGLU FF
  }
  return f;
}

VaeAttention::VaeAttention(const WeightStore& w, const std::string& p, int64_t c, int groups) {
  norm_.load(w, p + "group_norm", c, groups, 1e-6f);
  q_ = load_linear(w, p + "to_q", c, c);
  k_ = load_linear(w, p + "to_k", c, c);
  v_ = load_linear(w, p + "to_v", c, c);
  out_ = load_linear(w, p + "to_out.0", c, c);
}

Tensor VaeAttention::forward(const Tensor& x) const {
  const int64_t n = x.dim(0), h = x.dim(1), wd = x.dim(2), c = x.dim(3);
  Tensor t = norm_(x, false).reshape({n, h * wd, c});
  Tensor a = attention(q_.forward(t), k_.forward(t), v_.forward(t), 1, false, q_.bf16());
  Tensor out = out_.forward(a).reshape({n, h, wd, c});
  add_inplace(out, x);
  return out;
}

}  // namespace vg
