// A dense float32 tensor (up to 5-D, row-major) whose buffer comes from a
// process-wide size-bucketed pool, so steady-state denoising steps allocate
// nothing after the first step. Image activations use NHWC layout.
#pragma once
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

namespace vg {

using Shape = std::vector<int64_t>;

int64_t shape_numel(const Shape& s);
std::string shape_str(const Shape& s);

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(Shape shape);  // uninitialised contents
  static Tensor zeros(Shape shape);
  // Outside the pool: for long-lived data (weights) whose memory must return
  // to the system when freed.
  static Tensor unpooled(Shape shape);
  static Tensor from(Shape shape, const float* src);
  // Memory owned elsewhere (e.g. float32 weights inside a mapped file); the
  // deleter of `data` runs when the last Tensor referencing it dies.
  static Tensor wrap(Shape shape, std::shared_ptr<float> data);

  const Shape& shape() const { return shape_; }
  int64_t dim(int i) const { return shape_[i < 0 ? shape_.size() + i : i]; }
  int rank() const { return static_cast<int>(shape_.size()); }
  int64_t numel() const { return numel_; }
  bool empty() const { return numel_ == 0; }
  float* data() { return data_.get(); }
  const float* data() const { return data_.get(); }

  // Same buffer, new shape (numel must match).
  Tensor reshape(Shape shape) const;
  Tensor clone() const;
  // No other Tensor shares this buffer (safe to overwrite in place).
  bool sole_owner() const { return data_.use_count() == 1; }
  // The buffer belongs to someone else (wrap(): e.g. a read-only file
  // mapping) and must not be written.
  bool borrowed() const { return borrowed_; }

 private:
  Shape shape_;
  int64_t numel_ = 0;
  std::shared_ptr<float> data_;
  bool borrowed_ = false;
};

// Bytes currently held by the pool and total fresh allocations (for tests).
struct PoolStats {
  size_t fresh_allocations = 0;
  size_t bytes_cached = 0;
};
PoolStats tensor_pool_stats();
void tensor_pool_trim();

// A per-thread source of Tensor buffers tried before the pool (the planned
// arena and the dry run in core/arena.h). Returns null to use the pool.
struct TensorAllocHook {
  virtual ~TensorAllocHook() = default;
  virtual std::shared_ptr<float> allocate(size_t bytes) = 0;
};
// Installs `h` for this thread; returns the previous hook.
TensorAllocHook* set_tensor_alloc_hook(TensorAllocHook* h);

// While one lives (on this thread), new tensors bypass the pool: for one-off
// passes (VAE decode/encode) whose many buffer sizes would otherwise stay
// cached; freed memory goes straight back to the system.
class TensorPoolBypass {
 public:
  TensorPoolBypass();
  ~TensorPoolBypass();
  TensorPoolBypass(const TensorPoolBypass&) = delete;
  TensorPoolBypass& operator=(const TensorPoolBypass&) = delete;
};

}  // namespace vg
