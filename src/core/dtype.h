// Storage dtypes of weight files and conversion to float32 compute.
#pragma once
#include <cstdint>
#include <cstring>
#include <string>

namespace vg {

// kQuant: ggml block-quantised (GGUF); the block layout is TensorInfo::ggml_type,
// dtype_size() is 0 and convert_to_f32 refuses it (use tensor_to_f32).
enum class DType { kF32, kF16, kBF16, kF64, kI64, kI32, kI16, kI8, kU8, kBool, kQuant };

size_t dtype_size(DType t);
const char* dtype_name(DType t);        // safetensors spelling, e.g. "F16"
bool dtype_from_name(const std::string& name, DType* out);

inline float bf16_to_f32(uint16_t h) {
  uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

float f16_to_f32(uint16_t h);

// Converts n elements of `src` (any numeric dtype) into float32.
void convert_to_f32(DType t, const void* src, float* dst, size_t n);

}  // namespace vg
