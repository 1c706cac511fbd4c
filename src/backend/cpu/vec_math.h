// Vectorised row kernels for softmax-like loops (AVX-512, AVX2 fallback,
// scalar otherwise; chosen once at run time). exp is a degree-6 polynomial
// after range reduction: about 2 ulp, far inside the parity tolerances.
#pragma once
#include <cstdint>

namespace vg::vec {

float max(const float* x, int64_t n);
// x[i] = exp(x[i] - sub) in place; returns the sum of the results.
float exp_sub_sum(float* x, int64_t n, float sub);
void scale(float* x, int64_t n, float s);
// Which implementation runs: "avx512", "avx2" or "scalar".
const char* isa();

}  // namespace vg::vec
