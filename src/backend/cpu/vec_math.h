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
// y[i] = f(x[i] * a[i] + b[i]) with f = SiLU or identity (y may alias x).
void affine(const float* x, float* y, int64_t n, const float* a, const float* b, bool silu);
// y[i] = GELU with the tanh approximation (y may alias x).
void gelu_tanh(const float* x, float* y, int64_t n);
// sum[i] += x[i]; sq[i] += (x[i] - mean[i])^2 (mean may be null for sums only).
void accumulate(const float* x, int64_t n, float* sum, float* sq, const float* mean);
// Which implementation runs: "avx512", "avx2" or "scalar".
const char* isa();

}  // namespace vg::vec
