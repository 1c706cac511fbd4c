#include "backend/cpu/vec_math.h"

// GCC 12's AVX-512 headers build some intrinsics on _mm512_undefined_ps();
// inlined into functions compiled with target("avx512f") that trips false
// -Wuninitialized warnings (GCC bug 105593).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace vg::vec {

namespace {

constexpr float kLog2e = 1.44269504088896341f, kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;
constexpr float kC2 = 0.5f, kC3 = 1.0f / 6, kC4 = 1.0f / 24, kC5 = 1.0f / 120, kC6 = 1.0f / 720;

__attribute__((target("avx512f"))) inline __m512 exp16(__m512 x) {
  x = _mm512_max_ps(_mm512_min_ps(x, _mm512_set1_ps(88.3f)), _mm512_set1_ps(-87.3f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(kLog2e)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Hi), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Lo), r);
  __m512 p = _mm512_set1_ps(kC6);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kC5));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kC4));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kC3));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kC2));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, n);
}

__attribute__((target("avx2,fma"))) inline __m256 exp8(__m256 x) {
  x = _mm256_max_ps(_mm256_min_ps(x, _mm256_set1_ps(88.3f)), _mm256_set1_ps(-87.3f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(kLog2e)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Hi), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Lo), r);
  __m256 p = _mm256_set1_ps(kC6);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kC5));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kC4));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kC3));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kC2));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

__attribute__((target("avx512f"))) float max_512(const float* x, int64_t n) {
  __m512 m = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) m = _mm512_max_ps(m, _mm512_loadu_ps(x + i));
  if (i < n) m = _mm512_mask_max_ps(m, static_cast<__mmask16>((1u << (n - i)) - 1), m, _mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << (n - i)) - 1), x + i));
  return _mm512_reduce_max_ps(m);
}

__attribute__((target("avx512f"))) float exp_sub_sum_512(float* x, int64_t n, float sub) {
  const __m512 s = _mm512_set1_ps(sub);
  __m512 acc = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 e = exp16(_mm512_sub_ps(_mm512_loadu_ps(x + i), s));
    _mm512_storeu_ps(x + i, e);
    acc = _mm512_add_ps(acc, e);
  }
  if (i < n) {
    const __mmask16 k = static_cast<__mmask16>((1u << (n - i)) - 1);
    const __m512 e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i), s));
    _mm512_mask_storeu_ps(x + i, k, e);
    acc = _mm512_mask_add_ps(acc, k, acc, e);
  }
  return _mm512_reduce_add_ps(acc);
}

__attribute__((target("avx512f"))) void scale_512(float* x, int64_t n, float s) {
  const __m512 v = _mm512_set1_ps(s);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(x + i, _mm512_mul_ps(_mm512_loadu_ps(x + i), v));
  if (i < n) {
    const __mmask16 k = static_cast<__mmask16>((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(x + i, k, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, x + i), v));
  }
}

__attribute__((target("avx2,fma"))) float hsum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}

__attribute__((target("avx2,fma"))) float max_256(const float* x, int64_t n) {
  __m256 m = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) m = _mm256_max_ps(m, _mm256_loadu_ps(x + i));
  alignas(32) float t[8];
  _mm256_store_ps(t, m);
  float r = *std::max_element(t, t + 8);
  for (; i < n; ++i) r = std::max(r, x[i]);
  return r;
}

__attribute__((target("avx2,fma"))) float exp_sub_sum_256(float* x, int64_t n, float sub) {
  const __m256 s = _mm256_set1_ps(sub);
  __m256 acc = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), s));
    _mm256_storeu_ps(x + i, e);
    acc = _mm256_add_ps(acc, e);
  }
  float sum = hsum8(acc);
  for (; i < n; ++i) sum += (x[i] = std::exp(x[i] - sub));
  return sum;
}

__attribute__((target("avx2,fma"))) void scale_256(float* x, int64_t n, float s) {
  const __m256 v = _mm256_set1_ps(s);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), v));
  for (; i < n; ++i) x[i] *= s;
}

__attribute__((target("avx512f"))) inline __m512 silu16(__m512 v, bool silu) {
  if (!silu) return v;
  const __m512 e = exp16(_mm512_sub_ps(_mm512_setzero_ps(), v));
  return _mm512_div_ps(v, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
}

__attribute__((target("avx512f"))) void affine_512(const float* x, float* y, int64_t n, const float* a, const float* b, bool silu) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(y + i, silu16(_mm512_fmadd_ps(_mm512_loadu_ps(x + i), _mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i)), silu));
  if (i < n) {
    const __mmask16 k = static_cast<__mmask16>((1u << (n - i)) - 1);
    const __m512 v = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(k, x + i), _mm512_maskz_loadu_ps(k, a + i), _mm512_maskz_loadu_ps(k, b + i));
    _mm512_mask_storeu_ps(y + i, k, silu16(v, silu));
  }
}

__attribute__((target("avx2,fma"))) void affine_256(const float* x, float* y, int64_t n, const float* a, const float* b, bool silu) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 v = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
    if (silu) v = _mm256_div_ps(v, _mm256_add_ps(_mm256_set1_ps(1.0f), exp8(_mm256_sub_ps(_mm256_setzero_ps(), v))));
    _mm256_storeu_ps(y + i, v);
  }
  for (; i < n; ++i) {
    const float v = x[i] * a[i] + b[i];
    y[i] = silu ? v / (1.0f + std::exp(-v)) : v;
  }
}

// GELU (tanh approximation) as x * sigmoid(2u), u = sqrt(2/pi)(x + 0.044715x^3):
// the same function as 0.5x(1 + tanh(u)) without the cancellation of 1 + tanh
// near u = -inf; a few ulp from PyTorch's tanh form, and no libm tanh call.
constexpr float kGeluC = 0.7978845608028654f, kGeluA = 0.044715f;

__attribute__((target("avx512f"))) inline __m512 gelu_tanh16(__m512 v) {
  const __m512 inner = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_set1_ps(kGeluA), v), _mm512_mul_ps(v, v), v);  // x + a x^3
  return _mm512_div_ps(v, _mm512_add_ps(_mm512_set1_ps(1.0f), exp16(_mm512_mul_ps(_mm512_set1_ps(-2.0f * kGeluC), inner))));
}

__attribute__((target("avx512f"))) void gelu_tanh_512(const float* x, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, gelu_tanh16(_mm512_loadu_ps(x + i)));
  if (i < n) {
    const __mmask16 k = static_cast<__mmask16>((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(y + i, k, gelu_tanh16(_mm512_maskz_loadu_ps(k, x + i)));
  }
}

__attribute__((target("avx2,fma"))) void gelu_tanh_256(const float* x, float* y, int64_t n) {
  const __m256 c2 = _mm256_set1_ps(-2.0f * kGeluC), a = _mm256_set1_ps(kGeluA), one = _mm256_set1_ps(1.0f);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    const __m256 inner = _mm256_fmadd_ps(_mm256_mul_ps(a, v), _mm256_mul_ps(v, v), v);
    _mm256_storeu_ps(y + i, _mm256_div_ps(v, _mm256_add_ps(one, exp8(_mm256_mul_ps(c2, inner)))));
  }
  for (; i < n; ++i) y[i] = 0.5f * x[i] * (1.0f + std::tanh(kGeluC * (x[i] + kGeluA * x[i] * x[i] * x[i])));
}

void gelu_tanh_scalar(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = 0.5f * x[i] * (1.0f + std::tanh(kGeluC * (x[i] + kGeluA * x[i] * x[i] * x[i])));
}

void affine_scalar(const float* x, float* y, int64_t n, const float* a, const float* b, bool silu) {
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i] * a[i] + b[i];
    y[i] = silu ? v / (1.0f + std::exp(-v)) : v;
  }
}

float max_scalar(const float* x, int64_t n) {
  float m = -std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < n; ++i) m = std::max(m, x[i]);
  return m;
}

float exp_sub_sum_scalar(float* x, int64_t n, float sub) {
  float sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += (x[i] = std::exp(x[i] - sub));
  return sum;
}

void scale_scalar(float* x, int64_t n, float s) {
  for (int64_t i = 0; i < n; ++i) x[i] *= s;
}

enum class Isa { kScalar, kAvx2, kAvx512 };

Isa detect() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return Isa::kAvx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::kAvx2;
  return Isa::kScalar;
}

const Isa g_isa = detect();

}  // namespace

float max(const float* x, int64_t n) {
  return g_isa == Isa::kAvx512 ? max_512(x, n) : g_isa == Isa::kAvx2 ? max_256(x, n) : max_scalar(x, n);
}

float exp_sub_sum(float* x, int64_t n, float sub) {
  return g_isa == Isa::kAvx512 ? exp_sub_sum_512(x, n, sub) : g_isa == Isa::kAvx2 ? exp_sub_sum_256(x, n, sub) : exp_sub_sum_scalar(x, n, sub);
}

void scale(float* x, int64_t n, float s) {
  g_isa == Isa::kAvx512 ? scale_512(x, n, s) : g_isa == Isa::kAvx2 ? scale_256(x, n, s) : scale_scalar(x, n, s);
}

void affine(const float* x, float* y, int64_t n, const float* a, const float* b, bool silu) {
  if (g_isa == Isa::kAvx512) affine_512(x, y, n, a, b, silu);
  else if (g_isa == Isa::kAvx2) affine_256(x, y, n, a, b, silu);
  else affine_scalar(x, y, n, a, b, silu);
}

void gelu_tanh(const float* x, float* y, int64_t n) {
  if (g_isa == Isa::kAvx512) gelu_tanh_512(x, y, n);
  else if (g_isa == Isa::kAvx2) gelu_tanh_256(x, y, n);
  else gelu_tanh_scalar(x, y, n);
}

// Plain loops over contiguous channels: the compiler vectorises them for the
// baseline ISA; the work is memory-bound, so that is enough.
void accumulate(const float* x, int64_t n, float* sum, float* sq, const float* mean) {
  if (!mean) {
    for (int64_t i = 0; i < n; ++i) sum[i] += x[i];
    return;
  }
  for (int64_t i = 0; i < n; ++i) {
    const float d = x[i] - mean[i];
    sq[i] += d * d;
  }
}

const char* isa() { return g_isa == Isa::kAvx512 ? "avx512" : g_isa == Isa::kAvx2 ? "avx2" : "scalar"; }

}  // namespace vg::vec
