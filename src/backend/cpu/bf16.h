// bfloat16 storage for the reduced-precision compute path: weights and GEMM
// inputs in bf16, accumulation and everything between layers in float32.
#pragma once
#include <cstdint>
#include <vector>

namespace vg {

// Round-to-nearest-even float32 -> bf16 (NaN stays NaN); AVX512_BF16 when
// the CPU has it. Parallel over the pool for large arrays.
void to_bf16(const float* src, uint16_t* dst, int64_t n);
// Same, with every value multiplied by `scale` first.
void to_bf16_scaled(const float* src, uint16_t* dst, int64_t n, float scale);
// IEEE half -> bf16 (through the exact float32 value), parallel.
void f16_to_bf16(const uint16_t* src, uint16_t* dst, int64_t n);
// A reusable per-thread buffer of at least n bf16 values (slot 0..3 so one
// call site can hold several at once).
uint16_t* bf16_scratch(int slot, int64_t n);
// The CPU computes bf16 dot products natively (AVX512_BF16).
bool cpu_has_native_bf16();
// oneDNN can run the bf16 path here at all (AVX-512 core; emulated without
// AVX512_BF16, so slower than native).
bool cpu_can_bf16();

}  // namespace vg
