// float32 -> ggml block types, with the semantics of ggml's reference
// quantisers (quantize_row_*_ref: what llama-quantize and ggml_quantize_chunk
// use without an importance matrix): the bytes equal ggml's for every type
// here, the K types included (same scale/min search, no FMA contraction).
#pragma once
#include <cstdint>

namespace vg {

// Quantises n float32 values (a multiple of the type's block size) into dst
// (ggml_row_bytes(type, n) bytes). Types: F32, F16, BF16, Q4_0, Q4_1, Q5_0,
// Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K. Throws unsupported_format for
// other types, invalid_argument when n is not a whole number of blocks.
void quantize_row(int ggml_type, const float* src, void* dst, int64_t n);

// True when quantize_row supports `ggml_type`.
bool can_quantize(int ggml_type);

// IEEE binary16 / bfloat16 of a float32, rounded to nearest even (as ggml).
uint16_t f32_to_f16(float f);
uint16_t f32_to_bf16(float f);

}  // namespace vg
