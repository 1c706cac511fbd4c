// The ggml tensor types of GGUF files (id, block size, block bytes) and their
// dequantisation to float32, bit-exact with ggml's reference decoders.
#pragma once
#include <cstddef>
#include <cstdint>

namespace vg {

// ggml type ids as stored in GGUF tensor infos (ids 4, 5, 31-33 and 36-38
// were removed from ggml and are invalid).
enum GgmlType : int {
  kGgmlF32 = 0, kGgmlF16 = 1, kGgmlQ4_0 = 2, kGgmlQ4_1 = 3, kGgmlQ5_0 = 6, kGgmlQ5_1 = 7,
  kGgmlQ8_0 = 8, kGgmlQ8_1 = 9, kGgmlQ2_K = 10, kGgmlQ3_K = 11, kGgmlQ4_K = 12, kGgmlQ5_K = 13,
  kGgmlQ6_K = 14, kGgmlQ8_K = 15, kGgmlIQ4_NL = 20, kGgmlIQ4_XS = 23, kGgmlI8 = 24, kGgmlI16 = 25,
  kGgmlI32 = 26, kGgmlI64 = 27, kGgmlF64 = 28, kGgmlBF16 = 30,
};

struct GgmlTypeInfo {
  int id;
  const char* name;      // ggml's spelling, e.g. "q4_K"
  int64_t block_elems;   // elements per block (1 for plain types)
  size_t block_bytes;    // bytes per block
  bool dequantizable;    // dequantize_row supports it
};

// nullptr when `id` is not a ggml type visiongen knows (removed, or newer).
const GgmlTypeInfo* ggml_type_info(int id);
// Upper-case name for messages ("Q4_K"); "type <id>" when unknown.
const char* ggml_type_name(int id);
// Bytes of n elements (n a multiple of the block size).
size_t ggml_row_bytes(int id, int64_t n);

// Decodes n elements (a multiple of the block size) of `type` into float32,
// exactly as ggml's reference to_float. Throws unsupported_format for types
// without a decoder here (IQ1-IQ3, TQ, MXFP4, Q8_1, Q8_K).
void dequantize_row(int type, const void* src, float* dst, int64_t n);

}  // namespace vg
