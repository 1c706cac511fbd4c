// Bit-compatible reimplementation of torch's CPU generator (mt19937) and its
// randn/rand kernels, so a seed gives the same noise as
// torch.randn(shape, generator=torch.Generator().manual_seed(seed)).
#pragma once
#include <cstdint>
#include <optional>
#include <random>
#include <vector>

#include "sampling/rng.h"

namespace vg {

enum class TorchKernel {
  kAvx2,    // what torch runs on x86-64 (Cephes log/sincos polynomials); default
  kScalar,  // ATEN_CPU_CAPABILITY=default (libm)
};

class TorchCpuGenerator : public Rng {
 public:
  explicit TorchCpuGenerator(uint64_t seed = 0, TorchKernel kernel = TorchKernel::kAvx2);
  void manual_seed(uint64_t seed);

  // torch.randn / torch.rand of `numel` float32 values (contiguous).
  std::vector<float> randn(int64_t numel) override;
  std::vector<float> rand(int64_t numel);
  std::vector<double> randn_f64(int64_t numel);

  uint32_t random() { return engine_(); }
  uint64_t random64();

 private:
  float uniform_f32() { return static_cast<float>(engine_() & 0xFFFFFF) * (1.0f / 16777216.0f); }
  double uniform_f64() { return static_cast<double>(random64() & ((1ull << 53) - 1)) * (1.0 / 9007199254740992.0); }
  double normal_scalar_double();  // at::normal_distribution<double> with cached 2nd value

  std::mt19937 engine_;
  TorchKernel kernel_;
  std::optional<double> next_double_normal_;
};

// Cephes-style float log/sincos exactly as avx_mathfun computes them.
float cephes_logf(float x);
void cephes_sincosf(float x, float* s, float* c);

}  // namespace vg
