// AVX512-VNNI int8 kernel: MR activation rows x 32 output columns held in
// registers; per weight group the int32 dot products (vpdpbusd: u8 weight
// codes x s8 activations, 4 products per lane) are scaled into float sums.
#include <immintrin.h>

#include <cmath>

#include "quant/qmm_internal.h"

#define VG_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")))

namespace vg::qmm {

bool cpu_vnni() {
  static const bool ok = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
                         __builtin_cpu_supports("avx512vnni");
  return ok;
}

namespace {

template <int MR, int G, bool MIN>
VG_VNNI void tile(const Packed& p, const ActQ& a, int64_t r0, float* y, int64_t ldy, int n, const float* bias) {
  const int64_t k = p.k, ng = k / G, nb = k / 32;
  __m512 f[MR][2];
  for (int r = 0; r < MR; ++r) f[r][0] = f[r][1] = _mm512_setzero_ps();
  const int8_t* q[MR];
  for (int r = 0; r < MR; ++r) q[r] = a.q.data() + (r0 + r) * k;
  const uint8_t* wp = p.u.data();
  for (int64_t gi = 0; gi < ng; ++gi) {
    __m512i acc[MR][2];
    for (int r = 0; r < MR; ++r) acc[r][0] = acc[r][1] = _mm512_set1_epi32(a.sq[(r0 + r) * ng + gi]);
    const int64_t kb = gi * G;
#pragma GCC unroll 8
    for (int s = 0; s < G / 4; ++s) {
      const __m512i w0 = _mm512_loadu_si512(wp), w1 = _mm512_loadu_si512(wp + 64);
      wp += 128;
      for (int r = 0; r < MR; ++r) {
        int32_t xv;
        __builtin_memcpy(&xv, q[r] + kb + 4 * s, 4);
        const __m512i xb = _mm512_set1_epi32(xv);
        acc[r][0] = _mm512_dpbusd_epi32(acc[r][0], w0, xb);
        acc[r][1] = _mm512_dpbusd_epi32(acc[r][1], w1, xb);
      }
    }
    const __m512 s0 = _mm512_loadu_ps(p.sw.data() + gi * kCols), s1 = _mm512_loadu_ps(p.sw.data() + gi * kCols + 16);
    for (int r = 0; r < MR; ++r) {
      const __m512 dx = _mm512_set1_ps(a.d[(r0 + r) * nb + kb / 32]);
      f[r][0] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(acc[r][0]), dx), s0, f[r][0]);
      f[r][1] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(acc[r][1]), dx), s1, f[r][1]);
    }
    if constexpr (MIN) {
      const __m512 m0 = _mm512_loadu_ps(p.mw.data() + gi * kCols), m1 = _mm512_loadu_ps(p.mw.data() + gi * kCols + 16);
      for (int r = 0; r < MR; ++r) {
        const __m512 sx = _mm512_set1_ps(-a.s[(r0 + r) * ng + gi]);
        f[r][0] = _mm512_fmadd_ps(sx, m0, f[r][0]);
        f[r][1] = _mm512_fmadd_ps(sx, m1, f[r][1]);
      }
    }
  }
  const __mmask16 k0 = n >= 16 ? 0xffff : static_cast<__mmask16>((1u << n) - 1);
  const __mmask16 k1 = n >= 32 ? 0xffff : n <= 16 ? 0 : static_cast<__mmask16>((1u << (n - 16)) - 1);
  const __m512 b0 = bias ? _mm512_maskz_loadu_ps(k0, bias) : _mm512_setzero_ps();
  const __m512 b1 = bias ? _mm512_maskz_loadu_ps(k1, bias + 16) : _mm512_setzero_ps();
  for (int r = 0; r < MR; ++r) {
    float* yr = y + (r0 + r) * ldy;
    _mm512_mask_storeu_ps(yr, k0, _mm512_add_ps(f[r][0], b0));
    _mm512_mask_storeu_ps(yr + 16, k1, _mm512_add_ps(f[r][1], b1));
  }
}

template <int G, bool MIN>
void rows(const Packed& p, const ActQ& a, int64_t r0, int64_t nr, float* y, int64_t ldy, int n, const float* bias) {
  int64_t r = r0;
  for (; r + 4 <= r0 + nr; r += 4) tile<4, G, MIN>(p, a, r, y, ldy, n, bias);
  switch (r0 + nr - r) {
    case 3: tile<3, G, MIN>(p, a, r, y, ldy, n, bias); break;
    case 2: tile<2, G, MIN>(p, a, r, y, ldy, n, bias); break;
    case 1: tile<1, G, MIN>(p, a, r, y, ldy, n, bias); break;
    default: break;
  }
}

}  // namespace

void kernel_vnni(const Packed& p, const ActQ& a, int64_t r0, int64_t nr, float* y, int64_t ldy, int n,
                 const float* bias) {
  if (p.g == 16) return p.min ? rows<16, true>(p, a, r0, nr, y, ldy, n, bias) : rows<16, false>(p, a, r0, nr, y, ldy, n, bias);
  return p.min ? rows<32, true>(p, a, r0, nr, y, ldy, n, bias) : rows<32, false>(p, a, r0, nr, y, ldy, n, bias);
}

namespace {

VG_VNNI void quant_row_512(const float* x, int64_t k, int8_t* q, float* d) {
  const __m512 sign = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
  for (int64_t b = 0; b < k / 32; ++b) {
    const __m512 v0 = _mm512_loadu_ps(x + 32 * b), v1 = _mm512_loadu_ps(x + 32 * b + 16);
    const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_and_ps(v0, sign), _mm512_and_ps(v1, sign)));
    d[b] = amax / 127.0f;
    const __m512 id = _mm512_set1_ps(amax > 0 ? 127.0f / amax : 0.0f);
    // round to nearest even, as std::nearbyint in the scalar path
    const __m512i i0 = _mm512_cvt_roundps_epi32(_mm512_mul_ps(v0, id), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m512i i1 = _mm512_cvt_roundps_epi32(_mm512_mul_ps(v1, id), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + 32 * b), _mm512_cvtsepi32_epi8(i0));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + 32 * b + 16), _mm512_cvtsepi32_epi8(i1));
  }
}

}  // namespace

bool quantize_act_row_avx512(const float* x, int64_t k, int8_t* q, float* d) {
  if (!cpu_vnni()) return false;
  quant_row_512(x, k, q, d);
  return true;
}

}  // namespace vg::qmm
