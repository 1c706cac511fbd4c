// A slot that lets weight patches (LoRA) reach a layer after load. Shared by
// the layer (and its later rebuilds, e.g. CLIP's per-prompt weights) and the
// model's LayerRegistry, because layers are moved around while models are
// built. A layer brings itself up to date on its next forward when `version`
// differs from the one it last saw: it merges the deltas into its weight, or,
// in run-time mode (or when its weight cannot be rewritten, e.g. quantised),
// keeps the weight as loaded and adds the deltas' contribution to its output.
#pragma once
#include <atomic>
#include <functional>
#include <mutex>
#include <vector>

#include "core/tensor.h"

namespace vg {

// One contribution to a layer's weight, already scaled.
struct WeightDelta {
  // Adds scale * delta into w (the layer's weight shape). Always set.
  std::function<void(Tensor& w)> add;
  // The low-rank form delta = up [out, r] @ down [r, fan_in], when the update
  // has one (plain LoRA/PEFT): run-time mode then costs two thin GEMMs.
  // Empty for LoHa, LoKr and Tucker convs (run time uses the dense delta).
  Tensor up, down;
  float scale = 1.0f;
};

struct LayerPatch {
  // Fills the plain weight ([out,in] or OIHW) exactly as load does: the float32
  // tensor, or the bf16 vector for a bf16 layer.
  using Source = std::function<void(Tensor* f32, std::vector<uint16_t>* bf16)>;
  LayerPatch(Shape s, Source src) : shape(std::move(s)), original(std::move(src)) {}
  const Shape shape;
  const Source original;
  std::atomic<uint64_t> version{0};

  // runtime: apply at run time instead of merging into the weight.
  void set_deltas(std::vector<WeightDelta> d, bool runtime = false);
  bool patched() const;
  bool runtime() const;
  std::vector<WeightDelta> deltas() const;
  // original + deltas in float32 (then bf16 when `bf16` is given). With no
  // deltas this is `original` itself, so unpatching restores load's bits.
  void materialize(Tensor* f32, std::vector<uint16_t>* bf16) const;
  // The sum of the deltas as one dense float32 tensor of `shape`; with
  // low_rank_too false only of those without a low-rank form. Empty when
  // nothing is summed.
  Tensor dense_delta(bool low_rank_too = true) const;

 private:
  mutable std::mutex mu_;
  std::vector<WeightDelta> deltas_;
  bool runtime_ = false;
};

// out[m, o] += sum over deltas of x[m, :] . delta[o, :], x and out row-major
// (run-time LoRA of a linear layer). `dense` caches dense_delta() for deltas
// without a low-rank form.
void add_runtime_deltas(const std::vector<WeightDelta>& deltas, const Tensor& dense, const float* x, int64_t m,
                        int64_t in, float* out, int64_t out_features);

}  // namespace vg
