// Weight codes of each ggml block type (the integer form of dequantize_row's
// formulas), packing for the kernels, activation quantisation, scalar kernel.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/dtype.h"
#include "quant/ggml_types.h"
#include "quant/qmm_internal.h"

namespace vg::qmm {

namespace {

constexpr int8_t kIq4[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

inline float h2f(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return f16_to_f32(h);
}

inline void scale_min(int b, const uint8_t* S, int* sc, int* m) {
  if (b < 4) {
    *sc = S[b] & 63;
    *m = S[b + 4] & 63;
  } else {
    *sc = (S[b + 4] & 15) | ((S[b - 4] >> 6) << 4);
    *m = (S[b + 4] >> 4) | ((S[b] >> 6) << 4);
  }
}

// Q4_0/Q4_1/Q5_0/Q5_1/IQ4_NL nibble of element e (and Q5 high bit).
inline int nib32(const uint8_t* qs, int e) { return e < 16 ? (qs[e] & 15) : (qs[e - 16] >> 4); }

}  // namespace

int group_size(int type) {
  switch (type) {
    case kGgmlQ2_K: case kGgmlQ3_K: case kGgmlQ6_K: return 16;
    case kGgmlQ8_0: case kGgmlQ4_0: case kGgmlQ4_1: case kGgmlQ5_0: case kGgmlQ5_1: case kGgmlIQ4_NL:
    case kGgmlIQ4_XS: case kGgmlQ4_K: case kGgmlQ5_K: return 32;
    default: return 0;
  }
}

bool has_min(int type) {
  return type == kGgmlQ4_1 || type == kGgmlQ5_1 || type == kGgmlQ2_K || type == kGgmlQ4_K || type == kGgmlQ5_K;
}

void decode_block(int type, const uint8_t* b, int8_t* c, float* sw, float* mw) {
  switch (type) {
    case kGgmlQ8_0:
      sw[0] = h2f(b), mw[0] = 0;
      std::memcpy(c, b + 2, 32);
      return;
    case kGgmlQ4_0: case kGgmlIQ4_NL:
      sw[0] = h2f(b), mw[0] = 0;
      if (type == kGgmlQ4_0) {
        for (int j = 0; j < 16; ++j) c[j] = static_cast<int8_t>((b[2 + j] & 15) - 8), c[j + 16] = static_cast<int8_t>((b[2 + j] >> 4) - 8);
      } else {
        for (int j = 0; j < 16; ++j) c[j] = kIq4[b[2 + j] & 15], c[j + 16] = kIq4[b[2 + j] >> 4];
      }
      return;
    case kGgmlQ4_1:
      sw[0] = h2f(b), mw[0] = -h2f(b + 2);
      for (int j = 0; j < 16; ++j) c[j] = static_cast<int8_t>(b[4 + j] & 15), c[j + 16] = static_cast<int8_t>(b[4 + j] >> 4);
      return;
    case kGgmlQ5_0: case kGgmlQ5_1: {
      const bool one = type == kGgmlQ5_1;
      sw[0] = h2f(b), mw[0] = one ? -h2f(b + 2) : 0.0f;
      uint32_t qh;
      std::memcpy(&qh, b + (one ? 4 : 2), 4);
      const uint8_t* qs = b + (one ? 8 : 6);
      const int off = one ? 0 : 16;
      for (int j = 0; j < 16; ++j) {
        c[j] = static_cast<int8_t>(((qs[j] & 15) | (((qh >> j) & 1) << 4)) - off);
        c[j + 16] = static_cast<int8_t>(((qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4)) - off);
      }
      return;
    }
    case kGgmlQ2_K: {
      const uint8_t* qs = b + 16;
      const float d = h2f(b + 80), dmin = h2f(b + 82);
      for (int g = 0; g < 16; ++g) sw[g] = d * static_cast<float>(b[g] & 15), mw[g] = dmin * static_cast<float>(b[g] >> 4);
      for (int h = 0; h < 2; ++h)
        for (int sh = 0; sh < 4; ++sh)
          for (int j = 0; j < 32; ++j) c[128 * h + 32 * sh + j] = static_cast<int8_t>((qs[32 * h + j] >> (2 * sh)) & 3);
      return;
    }
    case kGgmlQ3_K: {
      const uint8_t *hm = b, *qs = b + 32, *S = b + 96;
      const float d = h2f(b + 108);
      for (int g = 0; g < 16; ++g) {
        const int sc = ((S[g % 8] >> (4 * (g / 8))) & 15) | (((S[8 + g % 4] >> (2 * (g / 4))) & 3) << 4);
        sw[g] = d * static_cast<float>(sc - 32), mw[g] = 0;
      }
      for (int h = 0; h < 2; ++h)
        for (int sh = 0; sh < 4; ++sh)
          for (int j = 0; j < 32; ++j) {
            const int low = (qs[32 * h + j] >> (2 * sh)) & 3, hb = (hm[j] >> (4 * h + sh)) & 1;
            c[128 * h + 32 * sh + j] = static_cast<int8_t>(low - 4 + 4 * hb);
          }
      return;
    }
    case kGgmlQ4_K: case kGgmlQ5_K: {
      const bool five = type == kGgmlQ5_K;
      const float d = h2f(b), dmin = h2f(b + 2);
      const uint8_t *S = b + 4, *qh = b + 16, *qs = b + (five ? 48 : 16);
      for (int sb = 0; sb < 8; ++sb) {
        int sc, m;
        scale_min(sb, S, &sc, &m);
        sw[sb] = d * static_cast<float>(sc), mw[sb] = dmin * static_cast<float>(m);
        const uint8_t* q = qs + 32 * (sb / 2);
        for (int j = 0; j < 32; ++j) {
          int v = (sb % 2) ? (q[j] >> 4) : (q[j] & 15);
          if (five) v += ((qh[j] >> sb) & 1) << 4;
          c[32 * sb + j] = static_cast<int8_t>(v);
        }
      }
      return;
    }
    case kGgmlQ6_K: {
      const uint8_t *ql = b, *qh = b + 128;
      const auto* scales = reinterpret_cast<const int8_t*>(b + 192);
      const float d = h2f(b + 208);
      for (int g = 0; g < 16; ++g) sw[g] = d * static_cast<float>(scales[g]), mw[g] = 0;
      for (int h = 0; h < 2; ++h)
        for (int cc = 0; cc < 4; ++cc) {
          const uint8_t* l = ql + 64 * h + 32 * (cc % 2);
          const int shift = cc < 2 ? 0 : 4;
          for (int j = 0; j < 32; ++j)
            c[128 * h + 32 * cc + j] = static_cast<int8_t>((((l[j] >> shift) & 15) | (((qh[32 * h + j] >> (2 * cc)) & 3) << 4)) - 32);
        }
      return;
    }
    case kGgmlIQ4_XS: {
      const float d = h2f(b);
      uint16_t sh;
      std::memcpy(&sh, b + 2, 2);
      const uint8_t *sl = b + 4, *qs = b + 8;
      for (int sb = 0; sb < 8; ++sb) {
        const int ls = ((sl[sb / 2] >> (4 * (sb % 2))) & 15) | (((sh >> (2 * sb)) & 3) << 4);
        sw[sb] = d * static_cast<float>(ls - 32), mw[sb] = 0;
        for (int j = 0; j < 32; ++j) c[32 * sb + j] = kIq4[nib32(qs + 16 * sb, j)];
      }
      return;
    }
    default: return;
  }
}

void pack(int type, const uint8_t* rows, size_t row_bytes, int n, int64_t k, Packed* p) {
  const GgmlTypeInfo* t = ggml_type_info(type);
  const int g = group_size(type);
  const int64_t be = t->block_elems, ng = k / g, gpb = be / g;
  p->k = k, p->g = g, p->min = has_min(type);
  p->u.resize(static_cast<size_t>(k * kCols));
  if (n < kCols) std::fill(p->u.begin(), p->u.end(), uint8_t{128});  // zero weights in the missing columns
  p->sw.assign(static_cast<size_t>(ng * kCols), 0.0f);
  p->mw.assign(p->min ? static_cast<size_t>(ng * kCols) : 0, 0.0f);
  alignas(64) int8_t c[256];
  float sw[16], mw[16];
  for (int col = 0; col < n; ++col) {
    const uint8_t* row = rows + static_cast<size_t>(col) * row_bytes;
    for (int64_t blk = 0; blk < k / be; ++blk) {
      decode_block(type, row + static_cast<size_t>(blk) * t->block_bytes, c, sw, mw);
      // u = c + 128 = c ^ 0x80, four codes at a time into [k/4][kCols][4]
      uint8_t* dst = p->u.data() + static_cast<size_t>((blk * be / 4) * kCols * 4 + col * 4);
      for (int64_t e = 0; e < be; e += 4) {
        uint32_t v;
        std::memcpy(&v, c + e, 4);
        v ^= 0x80808080u;
        std::memcpy(dst + (e / 4) * kCols * 4, &v, 4);
      }
      for (int64_t j = 0; j < gpb; ++j) {
        p->sw[static_cast<size_t>((blk * gpb + j) * kCols + col)] = sw[j];
        if (p->min) p->mw[static_cast<size_t>((blk * gpb + j) * kCols + col)] = mw[j];
      }
    }
  }
}

void quantize_act(const float* x, int64_t m, int64_t k, int g, ActQ* a) {
  a->m = m, a->k = k, a->g = g;
  const int64_t nb = k / 32, ng = k / g;
  a->q.resize(static_cast<size_t>(m * k));
  a->d.resize(static_cast<size_t>(m * nb));
  a->sq.resize(static_cast<size_t>(m * ng));
  a->s.resize(static_cast<size_t>(m * ng));
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < m; ++r) {
    const float* xr = x + r * k;
    int8_t* q = a->q.data() + r * k;
    float* d = a->d.data() + r * nb;
    if (!quantize_act_row_avx512(xr, k, q, d)) {
      for (int64_t b = 0; b < nb; ++b) {
        float amax = 0;
        for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(xr[b * 32 + j]));
        d[b] = amax / 127.0f;
        const float id = amax > 0 ? 127.0f / amax : 0.0f;
        for (int j = 0; j < 32; ++j) q[b * 32 + j] = static_cast<int8_t>(std::nearbyint(xr[b * 32 + j] * id));
      }
    }
    for (int64_t gi = 0; gi < ng; ++gi) {
      int32_t s = 0;
      for (int j = 0; j < g; ++j) s += q[gi * g + j];
      a->sq[static_cast<size_t>(r * ng + gi)] = -128 * s;
      a->s[static_cast<size_t>(r * ng + gi)] = d[gi * g / 32] * static_cast<float>(s);
    }
  }
}

void kernel_scalar(const Packed& p, const ActQ& a, int64_t r0, int64_t nr, float* y, int64_t ldy, int n,
                   const float* bias) {
  const int64_t k = p.k, ng = k / p.g;
  for (int64_t r = r0; r < r0 + nr; ++r) {
    const int8_t* q = a.q.data() + r * k;
    for (int col = 0; col < n; ++col) {
      float acc = 0;
      for (int64_t gi = 0; gi < ng; ++gi) {
        int32_t dot = a.sq[static_cast<size_t>(r * ng + gi)];
        for (int64_t kk = gi * p.g; kk < (gi + 1) * p.g; ++kk)
          dot += static_cast<int32_t>(p.u[static_cast<size_t>((kk / 4) * kCols * 4 + col * 4 + kk % 4)]) * q[kk];
        const float dx = a.d[static_cast<size_t>(r * (k / 32) + gi * p.g / 32)];
        acc += static_cast<float>(dot) * dx * p.sw[static_cast<size_t>(gi * kCols + col)];
        if (p.min) acc -= a.s[static_cast<size_t>(r * ng + gi)] * p.mw[static_cast<size_t>(gi * kCols + col)];
      }
      y[r * ldy + col] = acc + (bias ? bias[col] : 0.0f);
    }
  }
}

}  // namespace vg::qmm
