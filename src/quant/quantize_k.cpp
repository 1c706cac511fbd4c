// K-quant super-blocks (256 elements): ggml's reference scale/min searches
// (make_qkx2 for the affine types Q2_K/Q4_K/Q5_K, the weighted symmetric
// search for Q6_K, make_q3 for Q3_K), written from their definitions.
// Built with -ffp-contract=off like quantize.cpp.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "quant/ggml_types.h"
#include "quant/quantize.h"

namespace vg {

namespace {

constexpr int kQK = 256;
constexpr float kGroupMaxEps = 1e-15f;

inline int nearest_int(float v) {
  const float t = v + 12582912.f;
  uint32_t u;
  std::memcpy(&u, &t, 4);
  return static_cast<int>(u & 0x007fffff) - 0x00400000;
}
inline float half_value(float f) {  // f rounded through binary16
  const uint16_t h = f32_to_f16(f);
  uint8_t b[2];
  std::memcpy(b, &h, 2);
  float y;
  dequantize_row(kGgmlF16, b, &y, 1);
  return y;
}
inline void put_half(uint8_t* p, float f) {
  const uint16_t h = f32_to_f16(f);
  std::memcpy(p, &h, 2);
}

// Affine search: x ~ scale * L - min_out, L in [0, nmax], weighted error
// (squared, or absolute with use_mad), trying nstep+1 scales around nmax.
float affine_search(int n, int nmax, const float* x, const float* w, uint8_t* L, float* min_out,
                    float rmin, float rdelta, int nstep, bool use_mad) {
  float mn = x[0], mx = x[0], sum_w = w[0], sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    mn = std::min(mn, x[i]);
    mx = std::max(mx, x[i]);
    sum_w += w[i];
    sum_x += w[i] * x[i];
  }
  if (mn > 0) mn = 0;
  if (mx == mn) {
    std::fill(L, L + n, 0);
    *min_out = -mn;
    return 0.f;
  }
  float iscale = static_cast<float>(nmax) / (mx - mn), scale = 1 / iscale, best = 0;
  for (int i = 0; i < n; ++i) {
    L[i] = static_cast<uint8_t>(std::clamp(nearest_int(iscale * (x[i] - mn)), 0, nmax));
    float diff = scale * L[i] + mn - x[i];
    diff = use_mad ? std::fabs(diff) : diff * diff;
    best += w[i] * diff;
  }
  uint8_t aux[32];
  for (int is = 0; is <= nstep; ++is) {
    iscale = (rmin + rdelta * static_cast<float>(is) + static_cast<float>(nmax)) / (mx - mn);
    float sl = 0, sl2 = 0, sxl = 0;
    for (int i = 0; i < n; ++i) {
      const int l = std::clamp(nearest_int(iscale * (x[i] - mn)), 0, nmax);
      aux[i] = static_cast<uint8_t>(l);
      sl += w[i] * l;
      sl2 += w[i] * l * l;
      sxl += w[i] * l * x[i];
    }
    const float D = sum_w * sl2 - sl * sl;
    if (D <= 0) continue;
    float this_scale = (sum_w * sxl - sum_x * sl) / D, this_min = (sl2 * sum_x - sl * sxl) / D;
    if (this_min > 0) {
      this_min = 0;
      this_scale = sxl / sl2;
    }
    float err = 0;
    for (int i = 0; i < n; ++i) {
      float diff = this_scale * aux[i] + this_min - x[i];
      diff = use_mad ? std::fabs(diff) : diff * diff;
      err += w[i] * diff;
    }
    if (err < best) {
      std::copy(aux, aux + n, L);
      best = err;
      scale = this_scale;
      mn = this_min;
    }
  }
  *min_out = -mn;
  return scale;
}

// The value of largest magnitude (the first one on ties), sign kept.
float largest_magnitude(int n, const float* x) {
  float amax = 0, max = 0;
  for (int i = 0; i < n; ++i)
    if (std::fabs(x[i]) > amax) {
      amax = std::fabs(x[i]);
      max = x[i];
    }
  return max;
}

// Symmetric search (Q6_K): L in [0, 2*nmax), x ~ scale * (L - nmax), weights x^2.
float symmetric_search(int n, int nmax, const float* x, int8_t* L) {
  const float max = largest_magnitude(n, x);
  if (std::fabs(max) < kGroupMaxEps) {
    std::fill(L, L + n, 0);
    return 0.f;
  }
  auto sums = [&](float iscale, float* slx, float* sl2) {
    *slx = 0;
    *sl2 = 0;
    for (int i = 0; i < n; ++i) {
      const int l = std::clamp(nearest_int(iscale * x[i]), -nmax, nmax - 1);
      const float w = x[i] * x[i];
      *slx += w * x[i] * l;
      *sl2 += w * l * l;
    }
  };
  auto fill = [&](float iscale) {
    for (int i = 0; i < n; ++i)
      L[i] = static_cast<int8_t>(nmax + std::clamp(nearest_int(iscale * x[i]), -nmax, nmax - 1));
  };
  float iscale = -static_cast<float>(nmax) / max, slx, sl2;
  fill(iscale);
  sums(iscale, &slx, &sl2);
  float scale = sl2 != 0 ? slx / sl2 : 0.f, best = scale * slx;
  for (int is = -9; is <= 9; ++is) {
    if (is == 0) continue;
    iscale = -(static_cast<float>(nmax) + 0.1f * static_cast<float>(is)) / max;
    sums(iscale, &slx, &sl2);
    if (sl2 > 0 && slx * slx > best * sl2) {
      fill(iscale);
      scale = slx / sl2;
      best = scale * slx;
    }
  }
  return scale;
}

// Q3_K's search: start from the plain rounding, then move single values while
// that raises the weighted fit (weights x^2). L in [0, 2*nmax).
float q3_search(int n, int nmax, const float* x, int8_t* L) {
  const float max = largest_magnitude(n, x);
  if (std::fabs(max) < kGroupMaxEps) {
    std::fill(L, L + n, 0);
    return 0.f;
  }
  const float iscale = -static_cast<float>(nmax) / max;
  float slx = 0, sl2 = 0;
  for (int i = 0; i < n; ++i) {
    const int l = std::clamp(nearest_int(iscale * x[i]), -nmax, nmax - 1);
    L[i] = static_cast<int8_t>(l);
    const float w = x[i] * x[i];
    slx += w * x[i] * l;
    sl2 += w * l * l;
  }
  for (int it = 0; it < 5; ++it) {
    int changed = 0;
    for (int i = 0; i < n; ++i) {
      const float w = x[i] * x[i];
      float s1 = slx - w * x[i] * L[i];
      if (s1 <= 0) continue;
      float s2 = sl2 - w * L[i] * L[i];
      const int nl = std::clamp(nearest_int(x[i] * s2 / s1), -nmax, nmax - 1);
      if (nl == L[i]) continue;
      s1 += w * x[i] * nl;
      s2 += w * nl * nl;
      if (s2 > 0 && s1 * s1 * sl2 > slx * slx * s2) {
        L[i] = static_cast<int8_t>(nl);
        slx = s1;
        sl2 = s2;
        ++changed;
      }
    }
    if (!changed) break;
  }
  for (int i = 0; i < n; ++i) L[i] = static_cast<int8_t>(L[i] + nmax);
  return sl2 > 0 ? slx / sl2 : 0.f;
}

void pack_2bit(const uint8_t* L, uint8_t* qs) {
  for (int j = 0; j < kQK; j += 128)
    for (int l = 0; l < 32; ++l)
      qs[j / 4 + l] = static_cast<uint8_t>(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) |
                                           (L[j + l + 96] << 6));
}

void q2_k(const float* x, uint8_t* b) {
  uint8_t L[kQK];
  float scales[16], mins[16], w[16];
  float max_scale = 0, max_min = 0;
  for (int j = 0; j < 16; ++j) {
    for (int l = 0; l < 16; ++l) w[l] = std::fabs(x[16 * j + l]);
    scales[j] = affine_search(16, 3, x + 16 * j, w, L + 16 * j, &mins[j], -0.5f, 0.1f, 15, true);
    max_scale = std::max(max_scale, scales[j]);
    max_min = std::max(max_min, mins[j]);
  }
  uint8_t* sc = b;
  std::memset(sc, 0, 16);
  float d = 0, dmin = 0;
  if (max_scale > 0) {
    const float is = 15.f / max_scale;
    for (int j = 0; j < 16; ++j) sc[j] = static_cast<uint8_t>(nearest_int(is * scales[j]));
    d = max_scale / 15.f;
  }
  if (max_min > 0) {
    const float im = 15.f / max_min;
    for (int j = 0; j < 16; ++j) sc[j] = static_cast<uint8_t>(sc[j] | (nearest_int(im * mins[j]) << 4));
    dmin = max_min / 15.f;
  }
  put_half(b + 80, d);
  put_half(b + 82, dmin);
  const float dh = half_value(d), mh = half_value(dmin);
  for (int j = 0; j < 16; ++j) {
    const float dj = dh * (sc[j] & 15);
    if (dj == 0) continue;
    const float mj = mh * (sc[j] >> 4);
    for (int i = 0; i < 16; ++i)
      L[16 * j + i] = static_cast<uint8_t>(std::clamp(nearest_int((x[16 * j + i] + mj) / dj), 0, 3));
  }
  pack_2bit(L, b + 16);
}

void q3_k(const float* x, uint8_t* b) {
  int8_t L[kQK];
  float scales[16];
  for (int j = 0; j < 16; ++j) scales[j] = q3_search(16, 4, x + 16 * j, L + 16 * j);
  const float max_scale = largest_magnitude(16, scales);
  uint8_t* hmask = b;
  uint8_t* qs = b + 32;
  uint8_t* sc = b + 96;
  std::memset(b, 0, 110);
  float d = 0;
  if (max_scale != 0) {
    const float iscale = -32.f / max_scale;
    for (int j = 0; j < 16; ++j) {
      const int l = std::clamp(static_cast<int>(static_cast<int8_t>(nearest_int(iscale * scales[j]))), -32, 31) + 32;
      if (j < 8) sc[j] = static_cast<uint8_t>(l & 15);
      else sc[j - 8] = static_cast<uint8_t>(sc[j - 8] | ((l & 15) << 4));
      sc[j % 4 + 8] = static_cast<uint8_t>(sc[j % 4 + 8] | ((l >> 4) << (2 * (j / 4))));
    }
    d = 1 / iscale;
  }
  put_half(b + 108, d);
  const float dh = half_value(d);
  for (int j = 0; j < 16; ++j) {
    const int low = j < 8 ? (sc[j] & 15) : (sc[j - 8] >> 4);
    const int s = (low | (((sc[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32;
    const float dj = dh * static_cast<float>(s);
    if (dj == 0) continue;
    for (int i = 0; i < 16; ++i)
      L[16 * j + i] = static_cast<int8_t>(std::clamp(nearest_int(x[16 * j + i] / dj), -4, 3) + 4);
  }
  uint8_t U[kQK];
  for (int j = 0; j < kQK; ++j) {  // high bit of element j: bit j/32 of hmask[j%32]
    int v = L[j];
    if (v > 3) {
      hmask[j % 32] = static_cast<uint8_t>(hmask[j % 32] | (1 << (j / 32)));
      v -= 4;
    }
    U[j] = static_cast<uint8_t>(v);
  }
  pack_2bit(U, qs);
}

// Q4_K (bits 4) and Q5_K (bits 5): 8 sub-blocks of 32 with 6-bit scales/mins.
void q45_k(const float* x, uint8_t* b, int bits) {
  const int nmax = (1 << bits) - 1;
  uint8_t L[kQK];
  float scales[8], mins[8], w[32];
  float max_scale = 0, max_min = 0;
  for (int j = 0; j < 8; ++j) {
    float sx2 = 0;
    for (int l = 0; l < 32; ++l) sx2 += x[32 * j + l] * x[32 * j + l];
    const float av = std::sqrt(sx2 / 32);
    for (int l = 0; l < 32; ++l) w[l] = av + std::fabs(x[32 * j + l]);
    scales[j] = bits == 4 ? affine_search(32, 15, x + 32 * j, w, L + 32 * j, &mins[j], -1.f, 0.1f, 20, false)
                          : affine_search(32, 31, x + 32 * j, w, L + 32 * j, &mins[j], -0.5f, 0.1f, 15, false);
    max_scale = std::max(max_scale, scales[j]);
    max_min = std::max(max_min, mins[j]);
  }
  uint8_t* S = b + 4;
  std::memset(S, 0, 12);
  const float inv_s = max_scale > 0 ? 63.f / max_scale : 0.f, inv_m = max_min > 0 ? 63.f / max_min : 0.f;
  for (int j = 0; j < 8; ++j) {
    // ggml stores nearest_int into a uint8_t before clamping to 63
    const int ls = std::min(63, nearest_int(inv_s * scales[j]) & 255);
    const int lm = std::min(63, nearest_int(inv_m * mins[j]) & 255);
    if (j < 4) {
      S[j] = static_cast<uint8_t>(ls);
      S[j + 4] = static_cast<uint8_t>(lm);
    } else {
      S[j + 4] = static_cast<uint8_t>((ls & 15) | ((lm & 15) << 4));
      S[j - 4] = static_cast<uint8_t>(S[j - 4] | ((ls >> 4) << 6));
      S[j] = static_cast<uint8_t>(S[j] | ((lm >> 4) << 6));
    }
  }
  put_half(b, max_scale / 63.f);
  put_half(b + 2, max_min / 63.f);
  const float dh = half_value(max_scale / 63.f), mh = half_value(max_min / 63.f);
  for (int j = 0; j < 8; ++j) {
    int sc, m;
    if (j < 4) {
      sc = S[j] & 63;
      m = S[j + 4] & 63;
    } else {
      sc = (S[j + 4] & 15) | ((S[j - 4] >> 6) << 4);
      m = (S[j + 4] >> 4) | ((S[j] >> 6) << 4);
    }
    const float dj = dh * static_cast<float>(sc);
    if (dj == 0) continue;
    const float mj = mh * static_cast<float>(m);
    for (int i = 0; i < 32; ++i)
      L[32 * j + i] = static_cast<uint8_t>(std::clamp(nearest_int((x[32 * j + i] + mj) / dj), 0, nmax));
  }
  if (bits == 4) {
    uint8_t* q = b + 16;
    for (int j = 0; j < kQK; j += 64, q += 32)
      for (int l = 0; l < 32; ++l) q[l] = static_cast<uint8_t>(L[j + l] | (L[j + l + 32] << 4));
    return;
  }
  uint8_t* qh = b + 16;
  uint8_t* ql = b + 48;
  std::memset(qh, 0, 32);
  uint8_t m1 = 1, m2 = 2;
  for (int n = 0; n < kQK; n += 64, ql += 32, m1 = static_cast<uint8_t>(m1 << 2), m2 = static_cast<uint8_t>(m2 << 2))
    for (int j = 0; j < 32; ++j) {
      int l1 = L[n + j], l2 = L[n + j + 32];
      if (l1 > 15) { l1 -= 16; qh[j] |= m1; }
      if (l2 > 15) { l2 -= 16; qh[j] |= m2; }
      ql[j] = static_cast<uint8_t>(l1 | (l2 << 4));
    }
}

void q6_k(const float* x, uint8_t* b) {
  int8_t L[kQK];
  float scales[16], max_scale = 0, max_abs = 0;
  for (int ib = 0; ib < 16; ++ib) {
    scales[ib] = symmetric_search(16, 32, x + 16 * ib, L + 16 * ib);
    if (std::fabs(scales[ib]) > max_abs) {
      max_abs = std::fabs(scales[ib]);
      max_scale = scales[ib];
    }
  }
  std::memset(b, 0, 210);
  if (max_abs < kGroupMaxEps) return;  // all-zero block: d = 0
  uint8_t* ql = b;
  uint8_t* qh = b + 128;
  auto* sc = reinterpret_cast<int8_t*>(b + 192);
  const float iscale = -128.f / max_scale;
  put_half(b + 208, 1 / iscale);
  const float dh = half_value(1 / iscale);
  for (int ib = 0; ib < 16; ++ib) sc[ib] = static_cast<int8_t>(std::min(127, nearest_int(iscale * scales[ib])));
  for (int j = 0; j < 16; ++j) {
    const float dj = dh * static_cast<float>(sc[j]);
    if (dj == 0) continue;
    for (int i = 0; i < 16; ++i)
      L[16 * j + i] = static_cast<int8_t>(std::clamp(nearest_int(x[16 * j + i] / dj), -32, 31) + 32);
  }
  for (int j = 0; j < kQK; j += 128, ql += 64, qh += 32)
    for (int l = 0; l < 32; ++l) {
      const int a = L[j + l], c = L[j + l + 32], e = L[j + l + 64], g = L[j + l + 96];
      ql[l] = static_cast<uint8_t>((a & 15) | ((e & 15) << 4));
      ql[l + 32] = static_cast<uint8_t>((c & 15) | ((g & 15) << 4));
      qh[l] = static_cast<uint8_t>((a >> 4) | ((c >> 4) << 2) | ((e >> 4) << 4) | ((g >> 4) << 6));
    }
}

}  // namespace

void quantize_block_k(int type, const float* x, uint8_t* b) {
  switch (type) {
    case kGgmlQ2_K: q2_k(x, b); break;
    case kGgmlQ3_K: q3_k(x, b); break;
    case kGgmlQ4_K: q45_k(x, b, 4); break;
    case kGgmlQ5_K: q45_k(x, b, 5); break;
    default: q6_k(x, b); break;
  }
}

}  // namespace vg
