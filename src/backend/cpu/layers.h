// Parameterised layers whose weights are prepared once at load: Conv2d (oneDNN
// convolution, NHWC activations, weights reordered to oneDNN's preferred
// layout) and Linear (GEMM over the last dimension).
#pragma once
#include <functional>
#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <oneapi/dnnl/dnnl.hpp>
#include <tuple>
#include <vector>

#include "backend/cpu/layer_patch.h"
#include "core/tensor.h"
#include "quant/qmatmul.h"

namespace vg {

// The patch slot a layer follows (see layer_patch.h) and the version it last
// brought itself up to.
struct PatchLink {
  std::shared_ptr<LayerPatch> slot;
  uint64_t seen = 0;
  void attach(std::shared_ptr<LayerPatch> p) {
    slot = std::move(p);
    // as loaded = the slot unpatched; otherwise rebuild on first use
    seen = slot->patched() ? ~uint64_t{0} : slot->version.load();
  }
  // True once per change of the slot (and records it as seen).
  bool changed() {
    const uint64_t v = slot->version.load();
    if (v == seen) return false;
    seen = v;
    return true;
  }
};

class Conv2d {
 public:
  Conv2d() = default;
  // weight: [OC, IC/groups, KH, KW]; bias: [OC] or empty. bf16: weights are
  // kept in bf16 and inputs converted per call (float32 output).
  Conv2d(Tensor weight, Tensor bias, int stride, int pad_l, int pad_r, int groups = 1, bool bf16 = false);
  // Weights made on first use by `source` (plain OIHW of `shape`; it fills
  // the float32 tensor, or the bf16 vector for a bf16 layer): a model opens
  // without converting its convolutions, and each is converted once, just
  // before its reorder into oneDNN's layout, with no lasting plain copy.
  using Source = std::function<void(Tensor* f32, std::vector<uint16_t>* bf16)>;
  Conv2d(const Shape& shape, Source source, Tensor bias, int stride, int pad_l, int pad_r, bool bf16);

  // x: [N,H,W,IC] -> [N,OH,OW,OC]. If `accumulate` is given (shape of the
  // output), the result is added into it in place and it is returned.
  Tensor forward(const Tensor& x, Tensor* accumulate = nullptr) const;
  // bf16 layers: the input is already bf16 NHWC [n,h,w,IC] at xb (e.g. a
  // GroupNorm or upsample that wrote bf16 directly, saving a float32 copy).
  Tensor forward_bf16_input(const uint16_t* xb, int64_t n, int64_t h, int64_t w, Tensor* accumulate = nullptr) const;
  int64_t out_channels() const { return oc_; }
  int64_t in_channels() const { return ic_; }
  int64_t kernel() const { return kh_; }
  // Multiply-adds * 2 for an input of this size (for the benchmark).
  double flops(int64_t n, int64_t h, int64_t w) const;
  bool loaded() const { return oc_ > 0; }
  bool bf16() const { return bf16_; }
  void attach_patch(std::shared_ptr<LayerPatch> patch) { patch_.attach(std::move(patch)); }

 private:
  void refresh_patch() const;
  struct Prim {
    dnnl::convolution_forward prim;
    dnnl::memory weights;
    dnnl::memory::desc src_md, dst_md;
  };
  const Prim& get_prim(int64_t n, int64_t h, int64_t w, bool sum) const;
  Tensor run(void* src, int64_t n, int64_t h, int64_t w, Tensor* accumulate) const;
  int64_t out_size(int64_t in) const { return (in + pad_l_ + pad_r_ - kh_) / stride_ + 1; }

  mutable Tensor weight_;  // plain OIHW copy, released after the first reorder
  mutable std::vector<uint16_t> weight_bf16_;  // the same in bf16 (bf16 mode)
  mutable Source source_;                      // makes one of them on first use
  Tensor bias_;
  int64_t oc_ = 0, ic_ = 0, kh_ = 0, kw_ = 0;
  int stride_ = 1, pad_l_ = 0, pad_r_ = 0, groups_ = 1;
  bool bf16_ = false;
  mutable std::map<std::tuple<int64_t, int64_t, int64_t, bool>, std::unique_ptr<Prim>> cache_;
  mutable PatchLink patch_;
  mutable bool merged_ = false;              // the weight holds patch deltas
  mutable std::shared_ptr<Conv2d> rt_conv_;  // run-time deltas: a second conv, added
};

class Linear {
 public:
  Linear() = default;
  // weight: [out, in] (PyTorch layout); bias: [out] or empty. bf16: a oneDNN
  // matmul on bf16 weights and inputs with float32 output.
  Linear(Tensor weight, Tensor bias, bool bf16 = false);
  // A bf16 layer from weights already in bf16 ([out, in]).
  Linear(std::vector<uint16_t> weight_bf16, int64_t out, int64_t in, Tensor bias);
  // A quantised layer: the weight stays as ggml blocks (q.owner keeps them
  // mapped) and is multiplied by qmatmul; LoRA patches apply at run time.
  Linear(QMatrix q, Tensor bias, QmmPath path = QmmPath::kAuto);
  // x: [..., in] -> [..., out]
  Tensor forward(const Tensor& x) const;
  int64_t in_features() const { return in_; }
  int64_t out_features() const { return out_; }
  bool loaded() const { return out_ > 0; }
  bool bf16() const { return bf16_; }
  bool quantized() const { return q_.data != nullptr; }
  const QMatrix& qmatrix() const { return q_; }
  void attach_patch(std::shared_ptr<LayerPatch> patch) { patch_.attach(std::move(patch)); }

 private:
  void refresh_patch() const;
  void restore_original() const;
  struct Prim {
    dnnl::matmul prim;
    dnnl::memory weights;
    dnnl::memory::desc src_md, dst_md;
  };
  const Prim& get_prim(int64_t m) const;
  Tensor forward_bf16(const Tensor& x) const;
  void run_bf16(int64_t rows, const uint16_t* xb, float* dst) const;

  mutable Tensor weight_;
  Tensor bias_;
  mutable std::vector<uint16_t> weight_bf16_;  // plain [out, in] until the first reorder
  QMatrix q_;                                  // quantised mode: the blocks
  QmmPath qpath_ = QmmPath::kAuto;
  int64_t in_ = 0, out_ = 0;
  bool bf16_ = false;
  mutable std::map<int64_t, std::unique_ptr<Prim>> cache_;
  mutable PatchLink patch_;
  mutable bool merged_ = false;            // the weight holds patch deltas
  mutable std::vector<WeightDelta> rt_;    // run-time deltas (low-rank ones)
  mutable Tensor rt_dense_;                // run-time deltas without a low-rank form, summed
};

// C[M,N] = A[M,K] * B(^T) with row-major storage; thin wrapper on oneDNN sgemm.
void sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
           const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
           int64_t ldc);

}  // namespace vg
