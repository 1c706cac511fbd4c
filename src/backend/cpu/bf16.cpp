#include "backend/cpu/bf16.h"

#include "core/dtype.h"

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cstring>

namespace vg {

namespace {

inline uint16_t round_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

__attribute__((target("avx512f,avx512bf16"))) void convert_native(const float* s, uint16_t* d, int64_t n, float scale) {
  const __m512 sc = _mm512_set1_ps(scale);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256bh h = _mm512_cvtneps_pbh(_mm512_mul_ps(_mm512_loadu_ps(s + i), sc));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + i), reinterpret_cast<const __m256i&>(h));
  }
  for (; i < n; ++i) d[i] = round_bf16(s[i] * scale);
}

__attribute__((target("avx512f,avx512bf16,f16c"))) void f16_native(const uint16_t* s, uint16_t* d, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 f = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + i)));
    const __m256bh h = _mm512_cvtneps_pbh(f);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + i), reinterpret_cast<const __m256i&>(h));
  }
  for (; i < n; ++i) d[i] = round_bf16(f16_to_f32(s[i]));
}

void convert_scalar(const float* s, uint16_t* d, int64_t n, float scale) {
  for (int64_t i = 0; i < n; ++i) d[i] = round_bf16(s[i] * scale);
}

const bool g_native = [] {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512bf16") != 0;
}();

void convert(const float* s, uint16_t* d, int64_t n, float scale) {
  auto one = [&](int64_t b, int64_t e) {
    if (g_native) convert_native(s + b, d + b, e - b, scale);
    else convert_scalar(s + b, d + b, e - b, scale);
  };
  if (n < (1 << 16) || omp_in_parallel()) return one(0, n);
#pragma omp parallel
  {
    const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
    const int64_t chunk = ((n + nt - 1) / nt + 15) / 16 * 16;
    const int64_t b = std::min(n, t * chunk), e = std::min(n, b + chunk);
    if (b < e) one(b, e);
  }
}

}  // namespace

void to_bf16(const float* src, uint16_t* dst, int64_t n) { convert(src, dst, n, 1.0f); }

void f16_to_bf16(const uint16_t* src, uint16_t* dst, int64_t n) {
  const int64_t chunk = 1 << 16, chunks = (n + chunk - 1) / chunk;
#pragma omp parallel for schedule(static) if (n >= chunk)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t b = c * chunk, e = std::min(n, b + chunk);
    if (g_native) f16_native(src + b, dst + b, e - b);
    else
      for (int64_t i = b; i < e; ++i) dst[i] = round_bf16(f16_to_f32(src[i]));
  }
}
void to_bf16_scaled(const float* src, uint16_t* dst, int64_t n, float scale) { convert(src, dst, n, scale); }

uint16_t* bf16_scratch(int slot, int64_t n) {
  thread_local std::vector<uint16_t> buf[4];
  if (buf[slot].size() < static_cast<size_t>(n)) buf[slot].resize(static_cast<size_t>(n));
  return buf[slot].data();
}

bool cpu_has_native_bf16() { return g_native; }

bool cpu_can_bf16() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
         __builtin_cpu_supports("avx512dq");
}

}  // namespace vg
