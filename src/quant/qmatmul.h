// Linear layers computed straight from ggml quantised blocks: y = x @ W^T with
// W as [out] rows of ggml blocks (usually pointing into a mapped GGUF file).
// No float32 copy of W is ever made; two strategies:
//  * kInt8: activations quantised per 32-block to int8 with a float scale,
//    integer dot products with the weight codes (AVX512-VNNI), float sums;
//  * kTile: a tile of weight rows dequantised (exactly) to float32 in a
//    per-thread scratch and multiplied with sgemm: bit-identical to sgemm on
//    the dequantised weights' tile.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

namespace vg {

// A quantised [out, in] matrix. `owner` keeps `data` alive (the file mapping).
struct QMatrix {
  int type = -1;  // ggml type id
  const uint8_t* data = nullptr;
  int64_t out = 0, in = 0;
  std::shared_ptr<const void> owner;
  size_t row_bytes() const;
};

enum class QmmPath { kAuto, kInt8, kTile };

// The int8 path handles `type` (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K..Q6_K,
// IQ4_NL, IQ4_XS); the tile path handles every type dequantize_row decodes.
bool qmm_int8_supports(int type);
// The CPU has AVX512-VNNI (the fast int8 kernel); otherwise kInt8 runs a
// portable scalar kernel (tests) and kAuto picks kTile.
bool qmm_int8_native();
// What kAuto runs for this shape here ($VG_QMM=int8|tile overrides).
QmmPath qmm_choose(int type, int64_t m, int64_t out, int64_t in);
const char* qmm_path_name(QmmPath p);
// ggml type id for a name such as "q8_0" or "Q4_K" (any case); -1 when unknown.
int ggml_type_from_name(const std::string& name);

// y[m, out] = x[m, in] @ W^T (+ bias[out] when given). Parallel over output
// rows (OpenMP). Throws invalid_argument for an unusable type/shape.
void qmatmul(const QMatrix& w, const float* x, int64_t m, float* y, const float* bias = nullptr,
             QmmPath path = QmmPath::kAuto);

}  // namespace vg
