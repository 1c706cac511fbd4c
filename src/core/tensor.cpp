#include "core/tensor.h"

#include <malloc.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <new>
#include <sstream>

#include "core/arena.h"
#include "core/error.h"

namespace vg {

namespace {

// Free lists keyed by rounded byte size. Buffers return here when the last
// Tensor referencing them dies.
struct Pool {
  std::mutex mu;
  std::multimap<size_t, void*> free_list;
  size_t fresh = 0;
  size_t cached = 0;

  static size_t round_up(size_t bytes) {
    // Round to 4 KiB so slightly different shapes reuse buffers.
    return (bytes + 4095) & ~size_t(4095);
  }
  void* take(size_t bytes) {
    {
      std::lock_guard<std::mutex> lock(mu);
      auto it = free_list.find(bytes);
      if (it != free_list.end()) {
        void* p = it->second;
        free_list.erase(it);
        cached -= bytes;
        return p;
      }
      ++fresh;
    }
    void* p = std::aligned_alloc(64, bytes);
    if (!p) throw std::bad_alloc();
    return p;
  }
  void give(void* p, size_t bytes) {
    std::lock_guard<std::mutex> lock(mu);
    free_list.emplace(bytes, p);
    cached += bytes;
  }
  void trim() {
    std::lock_guard<std::mutex> lock(mu);
    for (auto& [sz, p] : free_list) std::free(p);
    free_list.clear();
    cached = 0;
    malloc_trim(0);  // also the heap's free holes (e.g. plain weights dropped after their reorder)
  }
};

Pool& pool() {
  static Pool* p = new Pool();  // never destroyed: tensors may outlive statics
  return *p;
}

}  // namespace

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (auto d : s) n *= d;
  return n;
}

std::string shape_str(const Shape& s) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < s.size(); ++i) os << (i ? "," : "") << s[i];
  os << "]";
  return os.str();
}

namespace {
thread_local int g_bypass = 0;
thread_local TensorAllocHook* g_hook = nullptr;
}

TensorAllocHook* set_tensor_alloc_hook(TensorAllocHook* h) {
  TensorAllocHook* prev = g_hook;
  g_hook = h;
  return prev;
}

// Big one-off buffers come straight from the system (glibc mmaps them) and
// go back when freed; measured on the SD VAE at 512x512 this peaks about
// 0.35 GB lower than the heap, for ~7% more decode time. malloc_trim returns
// what the heap kept for smaller ones.
TensorPoolBypass::TensorPoolBypass() {
  ++g_bypass;
}
TensorPoolBypass::~TensorPoolBypass() {
  if (--g_bypass == 0) malloc_trim(0);
}

Tensor::Tensor(Shape shape) : shape_(std::move(shape)) {
  if (shape_.size() > 5) fail(ErrorCode::kInternal, "tensor rank above 5");
  numel_ = shape_numel(shape_);
  if (numel_ < 0) fail(ErrorCode::kInternal, "negative tensor size");
  size_t bytes = Pool::round_up(std::max<size_t>(1, numel_) * sizeof(float));
  if (g_hook) {  // a planned arena or a dry run, before the pool and its bypass
    if (auto p = g_hook->allocate(bytes)) {
      data_ = std::move(p);
      return;
    }
  }
  if (g_bypass > 0) {
    *this = unpooled(shape_);
    return;
  }
  float* p = static_cast<float*>(pool().take(bytes));
  data_ = std::shared_ptr<float>(p, [bytes](float* q) { pool().give(q, bytes); });
}

Tensor Tensor::unpooled(Shape shape) {
  Tensor t;
  t.shape_ = std::move(shape);
  t.numel_ = shape_numel(t.shape_);
  const size_t bytes = Pool::round_up(std::max<size_t>(1, t.numel_) * sizeof(float));
  float* p = static_cast<float*>(std::aligned_alloc(64, bytes));
  if (!p) throw std::bad_alloc();
  t.data_ = std::shared_ptr<float>(p, [](float* q) { std::free(q); });
  return t;
}

Tensor Tensor::wrap(Shape shape, std::shared_ptr<float> data) {
  Tensor t;
  t.shape_ = std::move(shape);
  t.numel_ = shape_numel(t.shape_);
  t.data_ = std::move(data);
  t.borrowed_ = true;
  return t;
}

Tensor Tensor::zeros(Shape shape) {
  Tensor t(std::move(shape));
  if (!dry_run_active()) std::memset(t.data(), 0, t.numel() * sizeof(float));
  return t;
}

Tensor Tensor::from(Shape shape, const float* src) {
  Tensor t(std::move(shape));
  if (!dry_run_active()) std::memcpy(t.data(), src, t.numel() * sizeof(float));
  return t;
}

Tensor Tensor::reshape(Shape shape) const {
  if (shape_numel(shape) != numel_)
    fail(ErrorCode::kInternal, "reshape " + shape_str(shape_) + " -> " + shape_str(shape));
  Tensor t = *this;
  t.shape_ = std::move(shape);
  return t;
}

Tensor Tensor::clone() const {
  Tensor t(shape_);
  if (!dry_run_active()) std::memcpy(t.data(), data(), numel_ * sizeof(float));
  return t;
}

PoolStats tensor_pool_stats() {
  std::lock_guard<std::mutex> lock(pool().mu);
  return PoolStats{pool().fresh, pool().cached};
}

void tensor_pool_trim() {
  arena_trim_all();
  pool().trim();
}

}  // namespace vg
