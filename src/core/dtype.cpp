#include "core/dtype.h"

#include <cpuid.h>
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace vg {

size_t dtype_size(DType t) {
  switch (t) {
    case DType::kF64: case DType::kI64: return 8;
    case DType::kF32: case DType::kI32: return 4;
    case DType::kF16: case DType::kBF16: case DType::kI16: return 2;
    case DType::kI8: case DType::kU8: case DType::kBool: return 1;
    case DType::kQuant: return 0;
  }
  return 0;
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::kF32: return "F32";
    case DType::kF16: return "F16";
    case DType::kBF16: return "BF16";
    case DType::kF64: return "F64";
    case DType::kI64: return "I64";
    case DType::kI32: return "I32";
    case DType::kI16: return "I16";
    case DType::kI8: return "I8";
    case DType::kU8: return "U8";
    case DType::kBool: return "BOOL";
    case DType::kQuant: return "GGML";
  }
  return "?";
}

bool dtype_from_name(const std::string& n, DType* out) {
  static const std::pair<const char*, DType> kTable[] = {
      {"F32", DType::kF32}, {"F16", DType::kF16}, {"BF16", DType::kBF16},
      {"F64", DType::kF64}, {"I64", DType::kI64}, {"I32", DType::kI32},
      {"I16", DType::kI16}, {"I8", DType::kI8},   {"U8", DType::kU8},
      {"BOOL", DType::kBool}};
  for (auto& [name, t] : kTable) {
    if (n == name) {
      *out = t;
      return true;
    }
  }
  return false;
}

float f16_to_f32(uint16_t h) {
  uint32_t sign = (h >> 15) & 1, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  float v;
  if (exp == 0) {
    v = std::ldexp(static_cast<float>(mant), -24);
  } else if (exp == 31) {
    v = mant ? NAN : INFINITY;
  } else {
    v = std::ldexp(static_cast<float>(mant | 0x400), static_cast<int>(exp) - 25);
  }
  return sign ? -v : v;
}

namespace {

// Element i of a tensor whose data need not be aligned (safetensors offsets
// are arbitrary): memcpy, which compiles to a plain load.
template <typename T>
T load_unaligned(const unsigned char* base, size_t i) {
  T v;
  std::memcpy(&v, base + i * sizeof(T), sizeof(T));
  return v;
}

template <typename T>
void widen(const void* src, float* dst, size_t n) {
  const auto* b = static_cast<const unsigned char*>(src);
  for (size_t i = 0; i < n; ++i) dst[i] = static_cast<float>(load_unaligned<T>(b, i));
}

// IEEE half -> single is exact, so the F16C instruction gives the same
// values as the scalar routine, only much faster.
__attribute__((target("avx,f16c"))) void f16_block_f16c(const uint16_t* s, float* d, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(d + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i))));
  for (; i < n; ++i) d[i] = f16_to_f32(load_unaligned<uint16_t>(reinterpret_cast<const unsigned char*>(s), i));
}

// F16C from CPUID leaf 1 (ECX bit 29; clang's __builtin_cpu_supports has no "f16c").
const bool g_f16c = [] {
  __builtin_cpu_init();
  unsigned a = 0, b = 0, c = 0, d = 0;
  return __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29)) != 0 && __builtin_cpu_supports("avx");
}();

void f16_to_f32_array(const uint16_t* s, float* d, size_t n) {
  const auto* bytes = reinterpret_cast<const unsigned char*>(s);
  auto one = [&](size_t b, size_t e) {
    if (g_f16c) f16_block_f16c(s + b, d + b, e - b);
    else
      for (size_t i = b; i < e; ++i) d[i] = f16_to_f32(load_unaligned<uint16_t>(bytes, i));
  };
  if (n < (1u << 18)) return one(0, n);
  const long chunks = static_cast<long>((n + (1u << 16) - 1) >> 16);
#pragma omp parallel for schedule(static)
  for (long c = 0; c < chunks; ++c) one(static_cast<size_t>(c) << 16, std::min(n, (static_cast<size_t>(c) + 1) << 16));
}

}  // namespace

void convert_to_f32(DType t, const void* src, float* dst, size_t n) {
  switch (t) {
    case DType::kF32: std::memcpy(dst, src, n * 4); return;
    case DType::kF16: f16_to_f32_array(static_cast<const uint16_t*>(src), dst, n); return;
    case DType::kBF16: {
      const auto* b = static_cast<const unsigned char*>(src);
      for (size_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(load_unaligned<uint16_t>(b, i));
      return;
    }
    case DType::kF64: return widen<double>(src, dst, n);
    case DType::kI64: return widen<int64_t>(src, dst, n);
    case DType::kI32: return widen<int32_t>(src, dst, n);
    case DType::kI16: return widen<int16_t>(src, dst, n);
    case DType::kI8: return widen<int8_t>(src, dst, n);
    case DType::kU8: case DType::kBool: return widen<uint8_t>(src, dst, n);
    case DType::kQuant:
      fail(ErrorCode::kInternal, "convert_to_f32 got a block-quantised tensor; use tensor_to_f32");
  }
}

}  // namespace vg
