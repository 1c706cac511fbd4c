#include "quant/ggml_types.h"

#include <cstring>
#include <string>

#include "core/dtype.h"
#include "core/error.h"

namespace vg {

namespace {

constexpr GgmlTypeInfo kTypes[] = {
    {0, "F32", 1, 4, true},        {1, "F16", 1, 2, true},        {2, "Q4_0", 32, 18, true},
    {3, "Q4_1", 32, 20, true},     {6, "Q5_0", 32, 22, true},     {7, "Q5_1", 32, 24, true},
    {8, "Q8_0", 32, 34, true},     {9, "Q8_1", 32, 36, false},    {10, "Q2_K", 256, 84, true},
    {11, "Q3_K", 256, 110, true},  {12, "Q4_K", 256, 144, true},  {13, "Q5_K", 256, 176, true},
    {14, "Q6_K", 256, 210, true},  {15, "Q8_K", 256, 292, false}, {16, "IQ2_XXS", 256, 66, false},
    {17, "IQ2_XS", 256, 74, false}, {18, "IQ3_XXS", 256, 98, false}, {19, "IQ1_S", 256, 50, false},
    {20, "IQ4_NL", 32, 18, true},  {21, "IQ3_S", 256, 110, false}, {22, "IQ2_S", 256, 82, false},
    {23, "IQ4_XS", 256, 136, true}, {24, "I8", 1, 1, true},       {25, "I16", 1, 2, true},
    {26, "I32", 1, 4, true},       {27, "I64", 1, 8, true},       {28, "F64", 1, 8, true},
    {29, "IQ1_M", 256, 56, false}, {30, "BF16", 1, 2, true},      {34, "TQ1_0", 256, 54, false},
    {35, "TQ2_0", 256, 66, false}, {39, "MXFP4", 32, 17, false},
};

constexpr int8_t kIq4Values[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

// Exact binary16 -> float32 (subnormals are mant * 2^-24, exact in float32).
inline float half(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  uint32_t bits;
  if (exp == 0) {
    const float v = static_cast<float>(mant) * 5.9604644775390625e-8f;  // 2^-24
    std::memcpy(&bits, &v, 4);
    bits |= sign;
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 112) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

inline uint32_t u32le(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// Q4_0 / Q4_1 / Q5_0 / Q5_1 / IQ4_NL: 32-element blocks, nibbles split into
// halves (element j: low nibble of qs[j], element j+16: high nibble).
void legacy(int type, const uint8_t* b, float* y) {
  const float d = half(b);
  if (type == kGgmlQ4_0 || type == kGgmlIQ4_NL) {
    const uint8_t* qs = b + 2;
    for (int j = 0; j < 16; ++j) {
      const int lo = qs[j] & 15, hi = qs[j] >> 4;
      if (type == kGgmlQ4_0) {
        y[j] = d * static_cast<float>(lo - 8);
        y[j + 16] = d * static_cast<float>(hi - 8);
      } else {
        y[j] = d * static_cast<float>(kIq4Values[lo]);
        y[j + 16] = d * static_cast<float>(kIq4Values[hi]);
      }
    }
  } else if (type == kGgmlQ4_1) {
    const float m = half(b + 2);
    const uint8_t* qs = b + 4;
    for (int j = 0; j < 16; ++j) {
      y[j] = d * static_cast<float>(qs[j] & 15) + m;
      y[j + 16] = d * static_cast<float>(qs[j] >> 4) + m;
    }
  } else if (type == kGgmlQ5_0) {
    const uint32_t qh = u32le(b + 2);
    const uint8_t* qs = b + 6;
    for (int j = 0; j < 16; ++j) {
      const int lo = (qs[j] & 15) | (((qh >> j) & 1) << 4), hi = (qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4);
      y[j] = d * static_cast<float>(lo - 16);
      y[j + 16] = d * static_cast<float>(hi - 16);
    }
  } else {  // Q5_1
    const float m = half(b + 2);
    const uint32_t qh = u32le(b + 4);
    const uint8_t* qs = b + 8;
    for (int j = 0; j < 16; ++j) {
      const int lo = (qs[j] & 15) | (((qh >> j) & 1) << 4), hi = (qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4);
      y[j] = d * static_cast<float>(lo) + m;
      y[j + 16] = d * static_cast<float>(hi) + m;
    }
  }
}

void q8_0(const uint8_t* b, float* y) {
  const float d = half(b);
  const auto* qs = reinterpret_cast<const int8_t*>(b + 2);
  for (int j = 0; j < 32; ++j) y[j] = d * static_cast<float>(qs[j]);
}

void q2_k(const uint8_t* b, float* y) {
  const uint8_t* sc = b;
  const uint8_t* qs = b + 16;
  const float d = half(b + 80), dmin = half(b + 82);
  for (int e0 = 0; e0 < 256; e0 += 16) {  // one 16-element group shares a scale
    const int g = e0 / 16, h = e0 / 128, s = (e0 % 128) / 32;
    const float dl = d * static_cast<float>(sc[g] & 15), ml = dmin * static_cast<float>(sc[g] >> 4);
    for (int k = 0; k < 16; ++k) {
      const int j = (e0 + k) % 32;
      y[e0 + k] = dl * static_cast<float>((qs[32 * h + j] >> (2 * s)) & 3) - ml;
    }
  }
}

void q3_k(const uint8_t* b, float* y) {
  const uint8_t* hmask = b;
  const uint8_t* qs = b + 32;
  const uint8_t* S = b + 96;
  const float d = half(b + 108);
  for (int e0 = 0; e0 < 256; e0 += 16) {
    const int g = e0 / 16, h = e0 / 128, s = (e0 % 128) / 32, hbit = e0 / 32;
    const int sc = ((S[g % 8] >> (4 * (g / 8))) & 15) | (((S[8 + g % 4] >> (2 * (g / 4))) & 3) << 4);
    const float dl = d * static_cast<float>(sc - 32);
    for (int k = 0; k < 16; ++k) {
      const int j = (e0 + k) % 32;
      const int low = (qs[32 * h + j] >> (2 * s)) & 3;
      const int q = ((hmask[j] >> hbit) & 1) ? low : low - 4;
      y[e0 + k] = dl * static_cast<float>(q);
    }
  }
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

// Q4_K (qh == nullptr) and Q5_K.
void q45_k(const uint8_t* b, const uint8_t* qh, const uint8_t* qs, float* y) {
  const float d = half(b), dmin = half(b + 2);
  const uint8_t* S = b + 4;
  for (int sb = 0; sb < 8; ++sb) {
    int sc, m;
    scale_min(sb, S, &sc, &m);
    const float dl = d * static_cast<float>(sc), ml = dmin * static_cast<float>(m);
    const uint8_t* q = qs + 32 * (sb / 2);
    for (int j = 0; j < 32; ++j) {
      int v = (sb % 2) ? (q[j] >> 4) : (q[j] & 15);
      if (qh) v += ((qh[j] >> sb) & 1) << 4;
      y[32 * sb + j] = dl * static_cast<float>(v) - ml;
    }
  }
}

void q6_k(const uint8_t* b, float* y) {
  const uint8_t* ql = b;
  const uint8_t* qh = b + 128;
  const auto* scales = reinterpret_cast<const int8_t*>(b + 192);
  const float d = half(b + 208);
  for (int e0 = 0; e0 < 256; e0 += 16) {
    const float dl = d * static_cast<float>(scales[e0 / 16]);
    const int h = e0 / 128, c = (e0 % 128) / 32;
    for (int k = 0; k < 16; ++k) {
      const int j = (e0 + k) % 32;
      const uint8_t l = ql[64 * h + j + 32 * (c % 2)];
      const int low4 = c < 2 ? (l & 15) : (l >> 4);
      const int high2 = (qh[32 * h + j] >> (2 * c)) & 3;
      y[e0 + k] = dl * static_cast<float>((low4 | (high2 << 4)) - 32);
    }
  }
}

void iq4_xs(const uint8_t* b, float* y) {
  const float d = half(b);
  uint16_t sh;
  std::memcpy(&sh, b + 2, 2);
  const uint8_t* sl = b + 4;
  const uint8_t* qs = b + 8;
  for (int sb = 0; sb < 8; ++sb) {
    const int ls = ((sl[sb / 2] >> (4 * (sb % 2))) & 15) | (((sh >> (2 * sb)) & 3) << 4);
    const float dl = d * static_cast<float>(ls - 32);
    const uint8_t* q = qs + 16 * sb;
    for (int j = 0; j < 16; ++j) {
      y[32 * sb + j] = dl * static_cast<float>(kIq4Values[q[j] & 15]);
      y[32 * sb + j + 16] = dl * static_cast<float>(kIq4Values[q[j] >> 4]);
    }
  }
}

}  // namespace

const GgmlTypeInfo* ggml_type_info(int id) {
  for (const auto& t : kTypes)
    if (t.id == id) return &t;
  return nullptr;
}

const char* ggml_type_name(int id) {
  const GgmlTypeInfo* t = ggml_type_info(id);
  return t ? t->name : "unknown type";
}

size_t ggml_row_bytes(int id, int64_t n) {
  const GgmlTypeInfo* t = ggml_type_info(id);
  return t ? static_cast<size_t>(n / t->block_elems) * t->block_bytes : 0;
}

void dequantize_row(int type, const void* src, float* dst, int64_t n) {
  const GgmlTypeInfo* t = ggml_type_info(type);
  if (!t || !t->dequantizable)
    fail(ErrorCode::kUnsupportedFormat,
         std::string("GGUF tensors of ggml type ") + (t ? t->name : std::to_string(type)) +
             " cannot be decoded by visiongen yet; use a file quantised as Q8_0, Q6_K, Q5_K, Q4_K, Q4_0, F16 or BF16");
  if (n % t->block_elems != 0)
    fail(ErrorCode::kInvalidArgument, std::string("dequantize_row: ") + std::to_string(n) + " elements of " +
                                          t->name + " are not whole blocks");
  const auto* s = static_cast<const uint8_t*>(src);
  const int64_t nb = n / t->block_elems;
  switch (type) {
    case kGgmlF32: return convert_to_f32(DType::kF32, src, dst, static_cast<size_t>(n));
    case kGgmlF16: return convert_to_f32(DType::kF16, src, dst, static_cast<size_t>(n));
    case kGgmlBF16: return convert_to_f32(DType::kBF16, src, dst, static_cast<size_t>(n));
    case kGgmlF64: return convert_to_f32(DType::kF64, src, dst, static_cast<size_t>(n));
    case kGgmlI8: return convert_to_f32(DType::kI8, src, dst, static_cast<size_t>(n));
    case kGgmlI16: return convert_to_f32(DType::kI16, src, dst, static_cast<size_t>(n));
    case kGgmlI32: return convert_to_f32(DType::kI32, src, dst, static_cast<size_t>(n));
    case kGgmlI64: return convert_to_f32(DType::kI64, src, dst, static_cast<size_t>(n));
    default: break;
  }
  const size_t bb = t->block_bytes;
  const int64_t be = t->block_elems;
  for (int64_t i = 0; i < nb; ++i) {
    const uint8_t* b = s + static_cast<size_t>(i) * bb;
    float* y = dst + i * be;
    switch (type) {
      case kGgmlQ4_0: case kGgmlQ4_1: case kGgmlQ5_0: case kGgmlQ5_1: case kGgmlIQ4_NL: legacy(type, b, y); break;
      case kGgmlQ8_0: q8_0(b, y); break;
      case kGgmlQ2_K: q2_k(b, y); break;
      case kGgmlQ3_K: q3_k(b, y); break;
      case kGgmlQ4_K: q45_k(b, nullptr, b + 16, y); break;
      case kGgmlQ5_K: q45_k(b, b + 16, b + 48, y); break;
      case kGgmlQ6_K: q6_k(b, y); break;
      case kGgmlIQ4_XS: iq4_xs(b, y); break;
      default: break;
    }
  }
}

}  // namespace vg
