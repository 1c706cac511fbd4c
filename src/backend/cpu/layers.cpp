#include "backend/cpu/layers.h"

#include <chrono>
#include <cstring>
#include <map>
#include <mutex>
#include <tuple>

#include "backend/cpu/bf16.h"
#include "backend/cpu/dnnl_context.h"
#include "core/profile.h"
#include "core/arena.h"
#include "core/error.h"

namespace vg {

using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;

Conv2d::Conv2d(Tensor weight, Tensor bias, int stride, int pad_l, int pad_r, int groups, bool bf16)
    : weight_(std::move(weight)), bias_(std::move(bias)), stride_(stride), pad_l_(pad_l),
      pad_r_(pad_r), groups_(groups), bf16_(bf16) {
  if (weight_.rank() != 4) fail(ErrorCode::kShapeMismatch, "conv weight must be 4-D, got " + shape_str(weight_.shape()));
  oc_ = weight_.dim(0);
  ic_ = weight_.dim(1) * groups;
  kh_ = weight_.dim(2);
  kw_ = weight_.dim(3);
  if (!bias_.empty() && bias_.numel() != oc_)
    fail(ErrorCode::kShapeMismatch, "conv bias has " + std::to_string(bias_.numel()) +
                                        " values for " + std::to_string(oc_) + " outputs");
  if (bf16_) {  // hold only the bf16 copy: half the memory from load on
    weight_bf16_.resize(static_cast<size_t>(weight_.numel()));
    to_bf16(weight_.data(), weight_bf16_.data(), weight_.numel());
    weight_ = Tensor();
  }
}

Conv2d::Conv2d(const Shape& shape, Source source, Tensor bias, int stride, int pad_l, int pad_r, bool bf16)
    : source_(std::move(source)), bias_(std::move(bias)), stride_(stride), pad_l_(pad_l), pad_r_(pad_r), bf16_(bf16) {
  if (shape.size() != 4) fail(ErrorCode::kShapeMismatch, "conv weight must be 4-D, got " + shape_str(shape));
  oc_ = shape[0];
  ic_ = shape[1];
  kh_ = shape[2];
  kw_ = shape[3];
  if (!bias_.empty() && bias_.numel() != oc_) fail(ErrorCode::kShapeMismatch, "conv bias size mismatch");
}

void Conv2d::refresh_patch() const {
  if (!patch_.changed()) return;
  const LayerPatch& p = *patch_.slot;
  rt_conv_.reset();
  const bool merge = p.patched() && !p.runtime();
  if (merged_ || merge) {  // rebuild the weight on next use: as loaded, or with the deltas
    cache_.clear();
    weight_ = Tensor();
    std::vector<uint16_t>().swap(weight_bf16_);
    auto slot = patch_.slot;
    source_ = merge ? Source([slot](Tensor* f32, std::vector<uint16_t>* bf16) { slot->materialize(f32, bf16); })
                    : slot->original;
    merged_ = merge;
  }
  if (p.runtime()) rt_conv_ = std::make_shared<Conv2d>(p.dense_delta(), Tensor(), stride_, pad_l_, pad_r_, groups_, bf16_);
}

double Conv2d::flops(int64_t n, int64_t h, int64_t w) const {
  return 2.0 * n * out_size(h) * out_size(w) * oc_ * (ic_ / groups_) * kh_ * kw_;
}

const Conv2d::Prim& Conv2d::get_prim(int64_t n, int64_t h, int64_t w, bool sum) const {
  auto key = std::make_tuple(n, h, w, sum);
  auto it = cache_.find(key);
  if (it != cache_.end()) return *it->second;
  auto& eng = dnnl_engine();
  int64_t oh = out_size(h), ow = out_size(w);
  const dt cdt = bf16_ ? dt::bf16 : dt::f32;
  dnnl::memory::desc src_md({n, ic_, h, w}, cdt, tag::nhwc);
  dnnl::memory::desc dst_md({n, oc_, oh, ow}, dt::f32, tag::nhwc);
  dnnl::memory::dims wdims = groups_ == 1
                                 ? dnnl::memory::dims{oc_, ic_, kh_, kw_}
                                 : dnnl::memory::dims{groups_, oc_ / groups_, ic_ / groups_, kh_, kw_};
  dnnl::memory::desc w_any(wdims, cdt, tag::any);
  dnnl::memory::desc b_md({oc_}, dt::f32, tag::x);
  dnnl::primitive_attr attr;
  if (sum) {
    dnnl::post_ops ops;
    ops.append_sum(1.0f);
    attr.set_post_ops(ops);
  }
  dnnl::convolution_forward::desc d(
      dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct, src_md, w_any,
      bias_.empty() ? dnnl::memory::desc() : b_md, dst_md, {stride_, stride_}, {pad_l_, pad_l_},
      {pad_r_, pad_r_});
  dnnl::convolution_forward::primitive_desc pd(d, attr, eng);
  auto p = std::make_unique<Prim>();
  p->prim = dnnl::convolution_forward(pd);
  p->src_md = src_md;
  p->dst_md = dst_md;
  // Reorder weights once per distinct preferred layout. After the first
  // reorder the plain copy is dropped; later layouts reorder from it.
  for (auto& [k, other] : cache_) {
    if (other->weights.get_desc() == pd.weights_desc()) {
      p->weights = other->weights;
      break;
    }
  }
  if (!p->weights) {
    if (cache_.empty() && weight_.empty() && weight_bf16_.empty() && source_) {
      source_(bf16_ ? nullptr : &weight_, bf16_ ? &weight_bf16_ : nullptr);
      source_ = nullptr;
    }
    p->weights = dnnl::memory(pd.weights_desc(), eng);
    dnnl::memory src_w;
    const tag plain = groups_ == 1 ? tag::oihw : tag::goihw;
    if (!weight_.empty()) {
      src_w = dnnl::memory({wdims, dt::f32, plain}, eng, const_cast<float*>(weight_.data()));
    } else if (!weight_bf16_.empty()) {
      src_w = dnnl::memory({wdims, dt::bf16, plain}, eng, weight_bf16_.data());
    } else {
      src_w = cache_.begin()->second->weights;
    }
    dnnl::reorder(src_w, p->weights).execute(dnnl_stream(), src_w, p->weights);
    dnnl_stream().wait();
    weight_ = Tensor();
    std::vector<uint16_t>().swap(weight_bf16_);
  }
  auto& ref = *p;
  cache_.emplace(key, std::move(p));
  return ref;
}

Tensor Conv2d::forward(const Tensor& x, Tensor* accumulate) const {
  profile::Scope prof_("conv");
  if (x.rank() != 4 || x.dim(3) != ic_)
    fail(ErrorCode::kShapeMismatch, "conv expects [N,H,W," + std::to_string(ic_) + "], got " +
                                        shape_str(x.shape()));
  if (bf16_) {
    uint16_t* xb = bf16_scratch(0, x.numel());
    if (!dry_run_active()) to_bf16(x.data(), xb, x.numel());
    return forward_bf16_input(xb, x.dim(0), x.dim(1), x.dim(2), accumulate);
  }
  return run(const_cast<float*>(x.data()), x.dim(0), x.dim(1), x.dim(2), accumulate);
}

Tensor Conv2d::forward_bf16_input(const uint16_t* xb, int64_t n, int64_t h, int64_t w, Tensor* accumulate) const {
  profile::Scope prof_("conv");
  if (!bf16_) fail(ErrorCode::kInternal, "forward_bf16_input on a float32 convolution");
  return run(const_cast<uint16_t*>(xb), n, h, w, accumulate);
}

Tensor Conv2d::run(void* src_ptr, int64_t n, int64_t h, int64_t w, Tensor* accumulate) const {
  if (patch_.slot) refresh_patch();
  const Prim& p = get_prim(n, h, w, accumulate != nullptr);
  Tensor out;
  if (accumulate) {
    if (accumulate->shape() != Shape{n, out_size(h), out_size(w), oc_})
      fail(ErrorCode::kInternal, "conv accumulate shape mismatch");
    out = *accumulate;
  } else {
    out = Tensor({n, out_size(h), out_size(w), oc_});
  }
  if (!dry_run_active()) {  // a planning pass makes the primitive and its weights (above) only
    auto& eng = dnnl_engine();
    dnnl::memory src(p.src_md, eng, src_ptr);
    dnnl::memory dst(p.dst_md, eng, out.data());
    std::unordered_map<int, dnnl::memory> args{
        {DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, p.weights}, {DNNL_ARG_DST, dst}};
    if (!bias_.empty())
      args.emplace(DNNL_ARG_BIAS, dnnl::memory({{oc_}, dt::f32, tag::x}, eng,
                                               const_cast<float*>(bias_.data())));
    p.prim.execute(dnnl_stream(), args);
    dnnl_stream().wait();
  }
  if (rt_conv_) rt_conv_->run(src_ptr, n, h, w, &out);  // run-time LoRA: + conv(x, delta)
  return out;
}

Linear::Linear(Tensor weight, Tensor bias, bool bf16) : weight_(std::move(weight)), bias_(std::move(bias)), bf16_(bf16) {
  if (weight_.rank() == 4 && weight_.dim(2) == 1 && weight_.dim(3) == 1)
    weight_ = weight_.reshape({weight_.dim(0), weight_.dim(1)});  // 1x1 conv stored as conv
  if (weight_.rank() != 2)
    fail(ErrorCode::kShapeMismatch, "linear weight must be 2-D, got " + shape_str(weight_.shape()));
  out_ = weight_.dim(0);
  in_ = weight_.dim(1);
  if (!bias_.empty() && bias_.numel() != out_)
    fail(ErrorCode::kShapeMismatch, "linear bias size mismatch");
  if (bf16_) {
    weight_bf16_.resize(static_cast<size_t>(weight_.numel()));
    to_bf16(weight_.data(), weight_bf16_.data(), weight_.numel());
    weight_ = Tensor();
  }
}

Linear::Linear(std::vector<uint16_t> weight_bf16, int64_t out, int64_t in, Tensor bias)
    : bias_(std::move(bias)), weight_bf16_(std::move(weight_bf16)), in_(in), out_(out), bf16_(true) {
  if (static_cast<int64_t>(weight_bf16_.size()) != out * in) fail(ErrorCode::kShapeMismatch, "linear weight size mismatch");
  if (!bias_.empty() && bias_.numel() != out_) fail(ErrorCode::kShapeMismatch, "linear bias size mismatch");
}

Linear::Linear(QMatrix q, Tensor bias, QmmPath path) : bias_(std::move(bias)), q_(std::move(q)), qpath_(path) {
  in_ = q_.in;
  out_ = q_.out;
  if (!q_.data || out_ <= 0 || in_ <= 0) fail(ErrorCode::kInternal, "quantised linear without weights");
  if (!bias_.empty() && bias_.numel() != out_) fail(ErrorCode::kShapeMismatch, "linear bias size mismatch");
}

void Linear::restore_original() const {
  cache_.clear();
  weight_ = Tensor();
  std::vector<uint16_t>().swap(weight_bf16_);
  patch_.slot->original(bf16_ ? nullptr : &weight_, bf16_ ? &weight_bf16_ : nullptr);
  if (!bf16_ && weight_.rank() == 4) weight_ = weight_.reshape({out_, in_});
  merged_ = false;
}

void Linear::refresh_patch() const {
  if (!patch_.changed()) return;
  const LayerPatch& p = *patch_.slot;
  const std::vector<WeightDelta> deltas = p.deltas();
  rt_.clear();
  rt_dense_ = Tensor();
  if (deltas.empty() || p.runtime() || quantized()) {  // quantised weights are never rewritten
    if (merged_) restore_original();
    if (deltas.empty()) return;
    for (const WeightDelta& d : deltas)
      if (!d.up.empty()) rt_.push_back(d);
    rt_dense_ = p.dense_delta(/*low_rank_too=*/false);
    if (!rt_dense_.empty()) rt_dense_ = rt_dense_.reshape({out_, in_});
    return;
  }
  // Merge. A float32 weight of our own is rewritten in place (no new memory,
  // no page faults): as loaded + the deltas, the same bits materialize() gives.
  if (!bf16_ && !weight_.empty() && !weight_.borrowed() && weight_.sole_owner()) {
    Tensor w = weight_.reshape(p.shape);
    if (merged_) {
      Tensor src;
      p.original(&src, nullptr);
      std::copy_n(src.data(), src.numel(), w.data());
    }
    for (const WeightDelta& d : deltas) d.add(w);
    merged_ = true;
    return;
  }
  cache_.clear();
  weight_ = Tensor();
  std::vector<uint16_t>().swap(weight_bf16_);
  if (bf16_) p.materialize(nullptr, &weight_bf16_);
  else p.materialize(&weight_, nullptr);
  if (!bf16_ && weight_.rank() == 4) weight_ = weight_.reshape({out_, in_});
  merged_ = true;
}

const Linear::Prim& Linear::get_prim(int64_t m) const {
  auto it = cache_.find(m);
  if (it != cache_.end()) return *it->second;
  auto& eng = dnnl_engine();
  dnnl::memory::desc src_md({m, in_}, dt::bf16, tag::ab);
  dnnl::memory::desc w_any({in_, out_}, dt::bf16, tag::any);
  dnnl::memory::desc dst_md({m, out_}, dt::f32, tag::ab);
  dnnl::memory::desc b_md({1, out_}, dt::f32, tag::ab);
  dnnl::matmul::desc d = bias_.empty() ? dnnl::matmul::desc(src_md, w_any, dst_md) : dnnl::matmul::desc(src_md, w_any, b_md, dst_md);
  dnnl::matmul::primitive_desc pd(d, eng);
  auto p = std::make_unique<Prim>();
  p->prim = dnnl::matmul(pd);
  p->src_md = src_md;
  p->dst_md = dst_md;
  for (auto& [k, other] : cache_)
    if (other->weights.get_desc() == pd.weights_desc()) {
      p->weights = other->weights;
      break;
    }
  if (!p->weights) {
    p->weights = dnnl::memory(pd.weights_desc(), eng);
    // [out, in] row-major is {in, out} with the "ba" layout
    dnnl::memory src_w = !weight_bf16_.empty() ? dnnl::memory({{in_, out_}, dt::bf16, tag::ba}, eng, weight_bf16_.data())
                                               : cache_.begin()->second->weights;
    dnnl::reorder(src_w, p->weights).execute(dnnl_stream(), src_w, p->weights);
    dnnl_stream().wait();
    std::vector<uint16_t>().swap(weight_bf16_);
  }
  auto& ref = *p;
  cache_.emplace(m, std::move(p));
  return ref;
}

void Linear::run_bf16(int64_t rows, const uint16_t* xb, float* dst) const {
  const Prim& p = get_prim(rows);
  auto& eng = dnnl_engine();
  std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, dnnl::memory(p.src_md, eng, const_cast<uint16_t*>(xb))},
                                             {DNNL_ARG_WEIGHTS, p.weights},
                                             {DNNL_ARG_DST, dnnl::memory(p.dst_md, eng, dst)}};
  if (!bias_.empty()) args.emplace(DNNL_ARG_BIAS, dnnl::memory({{1, out_}, dt::f32, tag::ab}, eng, const_cast<float*>(bias_.data())));
  p.prim.execute(dnnl_stream(), args);
  dnnl_stream().wait();
}

namespace {

// oneDNN's bf16 matmul (its AMX kernels above all) can run a row count that is
// not a multiple of 128 far slower than the multiple below it (1950 rows at
// ~0.65x the speed of 1920 on an AMX Xeon). Such a product may run as the
// rows up to that multiple plus the few left: decided per (rows, in, out) by
// timing both ways once, on the first call of that shape in the process.
std::mutex g_split_mu;
std::map<std::tuple<int64_t, int64_t, int64_t>, bool> g_split_faster;

}  // namespace

Tensor Linear::forward_bf16(const Tensor& x) const {
  Shape os = x.shape();
  os.back() = out_;
  Tensor out(os);
  const int64_t m = x.numel() / in_;
  const int64_t main_rows = m / 128 * 128;
  const bool may_split = m > 512 && main_rows != m;
  if (dry_run_active()) {  // a planning pass makes the primitives and their weights only
    get_prim(m);
    return out;
  }
  uint16_t* xb = bf16_scratch(0, x.numel());
  to_bf16(x.data(), xb, x.numel());
  auto split = [&] {
    run_bf16(main_rows, xb, out.data());
    run_bf16(m - main_rows, xb + main_rows * in_, out.data() + main_rows * out_);
  };
  int decided = -1;  // -1 unknown, 0 whole, 1 split
  if (may_split) {
    std::lock_guard<std::mutex> lock(g_split_mu);
    auto it = g_split_faster.find({m, in_, out_});
    if (it != g_split_faster.end()) decided = it->second ? 1 : 0;
  }
  if (!may_split || decided == 0) {
    run_bf16(m, xb, out.data());
  } else if (decided == 1) {
    split();
  } else {
    get_prim(m), get_prim(main_rows), get_prim(m - main_rows);  // made (and weights reordered) before timing
    using Clock = std::chrono::steady_clock;
    auto t = Clock::now();
    run_bf16(m, xb, out.data());
    const double whole = std::chrono::duration<double>(Clock::now() - t).count();
    t = Clock::now();
    split();  // the same values row for row
    const double parts = std::chrono::duration<double>(Clock::now() - t).count();
    std::lock_guard<std::mutex> lock(g_split_mu);
    g_split_faster[{m, in_, out_}] = parts < 0.95 * whole;
  }
  if (!rt_.empty() || !rt_dense_.empty()) add_runtime_deltas(rt_, rt_dense_, x.data(), m, in_, out.data(), out_);
  return out;
}

Tensor Linear::forward(const Tensor& x) const {
  profile::Scope prof_("linear");
  if (x.dim(-1) != in_)
    fail(ErrorCode::kShapeMismatch, "linear expects last dim " + std::to_string(in_) + ", got " +
                                        shape_str(x.shape()));
  if (patch_.slot) refresh_patch();
  if (bf16_) return forward_bf16(x);
  Shape os = x.shape();
  os.back() = out_;
  Tensor out(os);
  if (dry_run_active()) return out;
  int64_t m = x.numel() / in_;
  float* o = out.data();
  if (quantized()) {
    qmatmul(q_, x.data(), m, o, bias_.empty() ? nullptr : bias_.data(), qpath_);
    if (!rt_.empty() || !rt_dense_.empty()) add_runtime_deltas(rt_, rt_dense_, x.data(), m, in_, o, out_);
    return out;
  }
  if (!bias_.empty()) {
    const float* b = bias_.data();
#pragma omp parallel for
    for (int64_t i = 0; i < m; ++i) std::memcpy(o + i * out_, b, out_ * sizeof(float));
  }
  sgemm(false, true, m, out_, in_, 1.0f, x.data(), in_, weight_.data(), in_,
        bias_.empty() ? 0.0f : 1.0f, o, out_);
  if (!rt_.empty() || !rt_dense_.empty()) add_runtime_deltas(rt_, rt_dense_, x.data(), m, in_, o, out_);
  return out;
}

void sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
           const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
           int64_t ldc) {
  dnnl_status_t st = dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', m, n, k, alpha, a, lda,
                                b, ldb, beta, c, ldc);
  if (st != dnnl_success) fail(ErrorCode::kInternal, "sgemm failed");
}

}  // namespace vg
