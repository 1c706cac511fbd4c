// Simple round-to-nearest quantisers (ggml's block layouts, not its
// importance-weighted search) for synthetic benchmark weights and tests.
// Superseded by quant/quantize.h (quantize_row) once that lands.
#pragma once
#include <cstdint>

namespace vg {

// The ggml types synth_quantize_row writes: Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K.
bool synth_quantize_supports(int type);
// n floats (a multiple of the block size) -> ggml blocks of `type` at dst.
void synth_quantize_row(int type, const float* x, void* dst, int64_t n);
// ggml type id for a name such as "q8_0", "Q4_K"; -1 when unknown.
int ggml_type_from_name(const char* name);

}  // namespace vg
