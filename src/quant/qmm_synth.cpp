#include "quant/qmm_synth.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "core/dtype.h"
#include "core/error.h"
#include "quant/ggml_types.h"

namespace vg {

namespace {

// float32 -> binary16, round to nearest even (normal and subnormal range).
uint16_t f2h(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  const uint32_t sign = (b >> 16) & 0x8000;
  const float a = std::fabs(f);
  if (a >= 65504.0f) return static_cast<uint16_t>(sign | 0x7bff);
  if (a < 6.103515625e-05f) return static_cast<uint16_t>(sign | static_cast<uint32_t>(std::nearbyint(a * 16777216.0f)));
  uint32_t ab;
  std::memcpy(&ab, &a, 4);
  const uint32_t e = (ab >> 23) - 112, m = ab & 0x7fffff;
  uint32_t h = (e << 10) | (m >> 13);
  const uint32_t rest = m & 0x1fff;
  if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) ++h;
  return static_cast<uint16_t>(sign | h);
}

void put_h(uint8_t* p, float v) {
  const uint16_t h = f2h(v);
  std::memcpy(p, &h, 2);
}

float h2f_rt(float v) { return f16_to_f32(f2h(v)); }

int clampi(int v, int lo, int hi) { return std::min(hi, std::max(lo, v)); }

// Legacy 32-blocks. Symmetric types (Q4_0, Q5_0) use the value of largest
// magnitude as -2^(bits-1) like ggml's reference; Q4_1/Q5_1 span [min, max].
void legacy(int type, const float* x, uint8_t* b) {
  const bool five = type == kGgmlQ5_0 || type == kGgmlQ5_1, asym = type == kGgmlQ4_1 || type == kGgmlQ5_1;
  const int levels = five ? 31 : 15, half = five ? 16 : 8;
  int q[32];
  if (asym) {
    const float mn = *std::min_element(x, x + 32), mx = *std::max_element(x, x + 32);
    const float d = h2f_rt((mx - mn) / levels), id = d ? 1.0f / d : 0.0f;
    const float m = h2f_rt(mn);
    put_h(b, d), put_h(b + 2, m);
    for (int j = 0; j < 32; ++j) q[j] = clampi(static_cast<int>(std::nearbyint((x[j] - m) * id)), 0, levels);
  } else {
    float amax = 0, mx = 0;
    for (int j = 0; j < 32; ++j)
      if (std::fabs(x[j]) > amax) amax = std::fabs(x[j]), mx = x[j];
    const float d = h2f_rt(mx / -half), id = d ? 1.0f / d : 0.0f;
    put_h(b, d);
    for (int j = 0; j < 32; ++j) q[j] = clampi(static_cast<int>(std::nearbyint(x[j] * id)) + half, 0, levels);
  }
  uint8_t* qs = b + (asym ? 4 : 2);
  if (five) {
    uint32_t qh = 0;
    for (int j = 0; j < 32; ++j) qh |= static_cast<uint32_t>((q[j] >> 4) & 1) << j;
    std::memcpy(qs, &qh, 4);
    qs += 4;
  }
  for (int j = 0; j < 16; ++j) qs[j] = static_cast<uint8_t>((q[j] & 15) | ((q[j + 16] & 15) << 4));
}

void q8_0(const float* x, uint8_t* b) {
  float amax = 0;
  for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
  const float d = amax / 127.0f, id = d ? 1.0f / d : 0.0f;
  put_h(b, d);
  for (int j = 0; j < 32; ++j) b[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(std::nearbyint(x[j] * id)));
}

// Q4_K / Q5_K: per 32-sub-block scale and min (6 bits each, relative to the
// block's d / dmin), codes 0..15 (0..31).
void q45_k(bool five, const float* x, uint8_t* b) {
  const int levels = five ? 31 : 15;
  float scale[8], mins[8];
  for (int s = 0; s < 8; ++s) {
    const float mn = std::min(0.0f, *std::min_element(x + 32 * s, x + 32 * s + 32));
    const float mx = *std::max_element(x + 32 * s, x + 32 * s + 32);
    scale[s] = (mx - mn) / levels, mins[s] = -mn;
  }
  const float ms = *std::max_element(scale, scale + 8), mm = *std::max_element(mins, mins + 8);
  const float d = h2f_rt(ms / 63.0f), dmin = h2f_rt(mm / 63.0f);
  put_h(b, d), put_h(b + 2, dmin);
  uint8_t* S = b + 4;
  std::memset(S, 0, 12);
  uint8_t* qh = b + 16;
  uint8_t* qs = b + (five ? 48 : 16);
  if (five) std::memset(qh, 0, 32);
  std::memset(qs, 0, 128);
  for (int s = 0; s < 8; ++s) {
    const int sc = d > 0 ? clampi(static_cast<int>(std::nearbyint(scale[s] / d)), 0, 63) : 0;
    const int m = dmin > 0 ? clampi(static_cast<int>(std::nearbyint(mins[s] / dmin)), 0, 63) : 0;
    if (s < 4) {
      S[s] |= static_cast<uint8_t>(sc), S[s + 4] |= static_cast<uint8_t>(m);
    } else {
      S[s + 4] = static_cast<uint8_t>((sc & 15) | ((m & 15) << 4));
      S[s - 4] |= static_cast<uint8_t>((sc >> 4) << 6), S[s] |= static_cast<uint8_t>((m >> 4) << 6);
    }
    const float dl = d * sc, ml = dmin * m, idl = dl > 0 ? 1.0f / dl : 0.0f;
    for (int j = 0; j < 32; ++j) {
      const int q = clampi(static_cast<int>(std::nearbyint((x[32 * s + j] + ml) * idl)), 0, levels);
      qs[32 * (s / 2) + j] |= static_cast<uint8_t>((q & 15) << (4 * (s % 2)));
      if (five) qh[j] |= static_cast<uint8_t>(((q >> 4) & 1) << s);
    }
  }
}

void q6_k(const float* x, uint8_t* b) {
  float sg[16];
  for (int g = 0; g < 16; ++g) {
    float amax = 0, mx = 0;
    for (int j = 0; j < 16; ++j)
      if (std::fabs(x[16 * g + j]) > amax) amax = std::fabs(x[16 * g + j]), mx = x[16 * g + j];
    sg[g] = mx / -32.0f;
  }
  float amax = 0, mx = 0;
  for (float s : sg)
    if (std::fabs(s) > amax) amax = std::fabs(s), mx = s;
  const float d = h2f_rt(mx / -128.0f);
  put_h(b + 208, d);
  uint8_t *ql = b, *qh = b + 128;
  auto* scales = reinterpret_cast<int8_t*>(b + 192);
  std::memset(b, 0, 192);
  for (int g = 0; g < 16; ++g) {
    const int sc = d ? clampi(static_cast<int>(std::nearbyint(sg[g] / d)), -128, 127) : 0;
    scales[g] = static_cast<int8_t>(sc);
    const float dl = d * sc, idl = dl ? 1.0f / dl : 0.0f;
    for (int k = 0; k < 16; ++k) {
      const int e = 16 * g + k, h = e / 128, c = (e % 128) / 32, j = e % 32;
      const int q = clampi(static_cast<int>(std::nearbyint(x[e] * idl)), -32, 31) + 32;
      ql[64 * h + j + 32 * (c % 2)] |= static_cast<uint8_t>((q & 15) << (c < 2 ? 0 : 4));
      qh[32 * h + j] |= static_cast<uint8_t>((q >> 4) << (2 * c));
    }
  }
}

}  // namespace

bool synth_quantize_supports(int type) {
  switch (type) {
    case kGgmlQ8_0: case kGgmlQ4_0: case kGgmlQ4_1: case kGgmlQ5_0: case kGgmlQ5_1:
    case kGgmlQ4_K: case kGgmlQ5_K: case kGgmlQ6_K: return true;
    default: return false;
  }
}

void synth_quantize_row(int type, const float* x, void* dst, int64_t n) {
  const GgmlTypeInfo* t = ggml_type_info(type);
  if (!synth_quantize_supports(type) || n % t->block_elems != 0)
    fail(ErrorCode::kInvalidArgument, std::string("cannot quantise ") + std::to_string(n) + " values to " +
                                          ggml_type_name(type) + "; use q8_0, q6_k, q5_k, q4_k, q5_1, q5_0, q4_1 or q4_0");
  auto* out = static_cast<uint8_t*>(dst);
  for (int64_t i = 0; i < n / t->block_elems; ++i) {
    const float* xb = x + i * t->block_elems;
    uint8_t* b = out + i * t->block_bytes;
    switch (type) {
      case kGgmlQ8_0: q8_0(xb, b); break;
      case kGgmlQ4_K: q45_k(false, xb, b); break;
      case kGgmlQ5_K: q45_k(true, xb, b); break;
      case kGgmlQ6_K: q6_k(xb, b); break;
      default: legacy(type, xb, b); break;
    }
  }
}

int ggml_type_from_name(const char* name) {
  std::string s(name);
  for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  for (int id = 0; id < 40; ++id) {
    const GgmlTypeInfo* t = ggml_type_info(id);
    if (t && s == t->name) return id;
  }
  return -1;
}

}  // namespace vg
