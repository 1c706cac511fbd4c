#include "quant/quantize.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "core/error.h"
#include "quant/ggml_types.h"

// Built with -ffp-contract=off (CMakeLists): ggml's reference quantisers round
// every product and sum separately, and the bytes must not depend on FMA.

namespace vg {

namespace {


inline uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float float_of(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline void put_half(uint8_t* p, float f) {
  const uint16_t h = f32_to_f16(f);
  std::memcpy(p, &h, 2);
}

// Round to nearest, ties to even, through the float adder (ggml's nearest_int:
// |v| < 2^22).
inline int nearest_int(float v) {
  const float t = v + 12582912.f;
  return static_cast<int>(bits_of(t) & 0x007fffff) - 0x00400000;
}

// ---- 32-element blocks ------------------------------------------------------

void q8_0(const float* x, uint8_t* b) {
  float amax = 0;
  for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
  const float d = amax / 127.f, id = d != 0 ? 1.f / d : 0.f;
  put_half(b, d);
  for (int j = 0; j < 32; ++j) b[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(std::roundf(x[j] * id)));
}

// The signed value of largest magnitude (the first one on ties).
float signed_absmax(const float* x, int n) {
  float amax = 0, max = 0;
  for (int j = 0; j < n; ++j)
    if (amax < std::fabs(x[j])) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  return max;
}

void min_max(const float* x, int n, float* mn, float* mx) {
  *mn = x[0];
  *mx = x[0];
  for (int j = 1; j < n; ++j) {
    *mn = std::min(*mn, x[j]);
    *mx = std::max(*mx, x[j]);
  }
}

// Q4_0 (bits 4) and Q5_0 (bits 5): x = d * (q - 2^(bits-1)), d = max / -2^(bits-1).
void q_0(const float* x, uint8_t* b, int bits) {
  const float half_range = bits == 4 ? 8.f : 16.f;
  const int qmax = bits == 4 ? 15 : 31;
  const float d = signed_absmax(x, 32) / -half_range, id = d != 0 ? 1.f / d : 0.f;
  put_half(b, d);
  uint8_t* qs = b + (bits == 4 ? 2 : 6);
  uint32_t qh = 0;
  for (int j = 0; j < 16; ++j) {
    // truncation toward zero of a non-negative value, as ggml's (int8_t) cast
    const int q0 = std::min(qmax, static_cast<int>(x[j] * id + (half_range + 0.5f)));
    const int q1 = std::min(qmax, static_cast<int>(x[j + 16] * id + (half_range + 0.5f)));
    qs[j] = static_cast<uint8_t>((q0 & 15) | ((q1 & 15) << 4));
    qh |= static_cast<uint32_t>((q0 >> 4) & 1) << j;
    qh |= static_cast<uint32_t>((q1 >> 4) & 1) << (j + 16);
  }
  if (bits == 5) std::memcpy(b + 2, &qh, 4);
}

// Q4_1 / Q5_1: x = d * q + m with m the block minimum.
void q_1(const float* x, uint8_t* b, int bits) {
  float mn, mx;
  min_max(x, 32, &mn, &mx);
  const int qmax = (1 << bits) - 1;
  const float d = (mx - mn) / static_cast<float>(qmax), id = d != 0 ? 1.f / d : 0.f;
  put_half(b, d);
  put_half(b + 2, mn);
  uint8_t* qs = b + (bits == 4 ? 4 : 8);
  uint32_t qh = 0;
  for (int j = 0; j < 16; ++j) {
    int q0 = static_cast<int>((x[j] - mn) * id + 0.5f);
    int q1 = static_cast<int>((x[j + 16] - mn) * id + 0.5f);
    if (bits == 4) {  // ggml clamps Q4_1 only (Q5_1's value never exceeds 31)
      q0 = std::min(15, q0);
      q1 = std::min(15, q1);
    }
    qs[j] = static_cast<uint8_t>((q0 & 15) | ((q1 & 15) << 4));
    qh |= static_cast<uint32_t>((q0 >> 4) & 1) << j;
    qh |= static_cast<uint32_t>((q1 >> 4) & 1) << (j + 16);
  }
  if (bits == 5) std::memcpy(b + 4, &qh, 4);
}

}  // namespace

// K types live in quantize_k.cpp.
void quantize_block_k(int type, const float* x, uint8_t* b);

uint16_t f32_to_f16(float f) {
  uint32_t x = bits_of(f);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000);
  x &= 0x7fffffff;
  if (x > 0x7f800000) return sign | 0x7e00;          // NaN (quiet, as ggml)
  if (x >= 0x47800000) return sign | 0x7c00;         // >= 65536 or inf
  if (x < 0x38800000) {                              // f16 subnormal or zero:
    const float t = float_of(x) + 0.5f;              // the adder rounds at 2^-24
    return static_cast<uint16_t>(sign | (bits_of(t) - 0x3f000000u));
  }
  const uint32_t odd = (x >> 13) & 1;                // ties to even
  x += 0xc8000fffu + odd;                            // rebias exponent, round
  return static_cast<uint16_t>(sign | (x >> 13));    // a carry into exp 31 is inf
}

uint16_t f32_to_bf16(float f) {
  const uint32_t u = bits_of(f);
  if ((u & 0x7fffffff) > 0x7f800000) return static_cast<uint16_t>((u >> 16) | 64);
  return static_cast<uint16_t>((u + 0x7fff + ((u >> 16) & 1)) >> 16);
}

bool can_quantize(int t) {
  switch (t) {
    case kGgmlF32: case kGgmlF16: case kGgmlBF16: case kGgmlQ4_0: case kGgmlQ4_1:
    case kGgmlQ5_0: case kGgmlQ5_1: case kGgmlQ8_0: case kGgmlQ2_K: case kGgmlQ3_K:
    case kGgmlQ4_K: case kGgmlQ5_K: case kGgmlQ6_K:
      return true;
    default:
      return false;
  }
}

void quantize_row(int type, const float* src, void* dst, int64_t n) {
  const GgmlTypeInfo* info = ggml_type_info(type);
  if (!info || !can_quantize(type))
    fail(ErrorCode::kUnsupportedFormat,
         std::string("cannot quantise to ggml type ") + ggml_type_name(type) +
             "; use q8_0, q6_k, q5_k, q4_k, q3_k, q2_k, q5_1, q5_0, q4_1, q4_0, f16, bf16 or f32");
  if (n < 0 || n % info->block_elems != 0)
    fail(ErrorCode::kInvalidArgument, "quantising " + std::to_string(n) + " values to " + info->name +
                                          ": not a multiple of its block size " +
                                          std::to_string(info->block_elems));
  auto* out = static_cast<uint8_t*>(dst);
  const int64_t nb = n / info->block_elems;
  for (int64_t i = 0; i < nb; ++i) {
    const float* x = src + i * info->block_elems;
    uint8_t* b = out + i * info->block_bytes;
    switch (type) {
      case kGgmlF32: std::memcpy(b, x, 4); break;
      case kGgmlF16: { const uint16_t h = f32_to_f16(*x); std::memcpy(b, &h, 2); break; }
      case kGgmlBF16: { const uint16_t h = f32_to_bf16(*x); std::memcpy(b, &h, 2); break; }
      case kGgmlQ8_0: q8_0(x, b); break;
      case kGgmlQ4_0: q_0(x, b, 4); break;
      case kGgmlQ5_0: q_0(x, b, 5); break;
      case kGgmlQ4_1: q_1(x, b, 4); break;
      case kGgmlQ5_1: q_1(x, b, 5); break;
      default: quantize_block_k(type, x, b); break;
    }
  }
}

}  // namespace vg
