#include "backend/cpu/layer_patch.h"

#include <algorithm>

#include "backend/cpu/bf16.h"
#include "backend/cpu/layers.h"
#include "core/error.h"

namespace vg {

void LayerPatch::set_deltas(std::vector<WeightDelta> d, bool runtime) {
  std::lock_guard<std::mutex> lock(mu_);
  deltas_ = std::move(d);
  runtime_ = runtime && !deltas_.empty();
  ++version;
}

bool LayerPatch::patched() const {
  std::lock_guard<std::mutex> lock(mu_);
  return !deltas_.empty();
}

bool LayerPatch::runtime() const {
  std::lock_guard<std::mutex> lock(mu_);
  return runtime_;
}

std::vector<WeightDelta> LayerPatch::deltas() const {
  std::lock_guard<std::mutex> lock(mu_);
  return deltas_;
}

void LayerPatch::materialize(Tensor* f32, std::vector<uint16_t>* bf16) const {
  const std::vector<WeightDelta> d = deltas();
  if (d.empty()) return original(f32, bf16);
  Tensor src;
  original(&src, nullptr);
  // a private copy: the original may be float32 used in place from the mapping
  Tensor w = Tensor::unpooled(shape);
  if (src.numel() != w.numel()) fail(ErrorCode::kInternal, "patched weight size mismatch");
  std::copy_n(src.data(), src.numel(), w.data());
  src = Tensor();
  for (const WeightDelta& x : d) x.add(w);
  if (f32) {
    *f32 = std::move(w);
  } else {
    bf16->resize(static_cast<size_t>(w.numel()));
    to_bf16(w.data(), bf16->data(), w.numel());
  }
}

Tensor LayerPatch::dense_delta(bool low_rank_too) const {
  Tensor w;
  for (const WeightDelta& x : deltas()) {
    if (!low_rank_too && !x.up.empty()) continue;
    if (w.empty()) w = Tensor::unpooled(shape), std::fill_n(w.data(), w.numel(), 0.0f);
    x.add(w);
  }
  return w;
}

void add_runtime_deltas(const std::vector<WeightDelta>& deltas, const Tensor& dense, const float* x, int64_t m,
                        int64_t in, float* out, int64_t out_features) {
  for (const WeightDelta& d : deltas) {
    if (d.up.empty()) continue;  // in `dense`
    const int64_t r = d.down.dim(0);
    // x @ down^T, then scale * h @ up^T added into out. Scratch outside the
    // tensor pool and arena: the planned step's allocations stay as planned.
    thread_local std::vector<float> h;
    h.resize(static_cast<size_t>(m * r));
    sgemm(false, true, m, r, in, 1.0f, x, in, d.down.data(), in, 0.0f, h.data(), r);
    sgemm(false, true, m, out_features, r, d.scale, h.data(), r, d.up.data(), r, 1.0f, out, out_features);
  }
  if (!dense.empty()) sgemm(false, true, m, out_features, in, 1.0f, x, in, dense.data(), in, 1.0f, out, out_features);
}

}  // namespace vg
