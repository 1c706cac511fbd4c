// Internals of qmatmul: weight codes, packed column blocks, quantised
// activations and the int8 kernels (scalar and AVX512-VNNI).
#pragma once
#include <cstdint>
#include <vector>

namespace vg::qmm {

constexpr int kCols = 32;  // columns (output features) per packed block

// Rows of W per tile of the dequantise-tile path.
inline int64_t tile_rows(int64_t in) { return in <= 1280 ? 128 : 64; }

// Elements sharing one weight scale: 16 for Q2_K/Q3_K/Q6_K, 32 otherwise;
// 0 for types the int8 path does not handle.
int group_size(int type);
// Weights with an additive term (value = sw * c - mw): Q4_1, Q5_1, Q2_K, Q4_K, Q5_K.
bool has_min(int type);
// One ggml block -> signed codes c, and per group the scale sw and min mw,
// so that element e = sw[e / G] * c[e] - mw[e / G] (dequantize_row's value).
void decode_block(int type, const uint8_t* b, int8_t* c, float* sw, float* mw);

// kCols weight rows, packed for the kernels: u = c + 128 as
// u8 [k/4][kCols][4], and per group sw / mw as float [k/G][kCols].
struct Packed {
  int64_t k = 0;
  int g = 32;
  bool min = false;
  std::vector<uint8_t> u;
  std::vector<float> sw, mw;
};
// Packs rows [0, n) (n <= kCols) of `rows` (row stride `row_bytes`); missing
// columns get zero weights.
void pack(int type, const uint8_t* rows, size_t row_bytes, int n, int64_t k, Packed* p);

// Activations quantised per 32-block: q int8 [m][k], d float [m][k/32]; per
// group G: sq = -128 * sum(q) (cancels the +128 of the weight codes) and
// s = d * sum(q) (for the min term).
struct ActQ {
  int64_t m = 0, k = 0;
  int g = 32;
  std::vector<int8_t> q;
  std::vector<float> d, s;
  std::vector<int32_t> sq;
};
void quantize_act(const float* x, int64_t m, int64_t k, int g, ActQ* a);

// y[r, 0..n) (+)= rows [r0, r0+nr) of x times the packed block; columns >= n
// are not stored. bias (n values) or nullptr.
void kernel_scalar(const Packed& p, const ActQ& a, int64_t r0, int64_t nr, float* y, int64_t ldy, int n,
                   const float* bias);
void kernel_vnni(const Packed& p, const ActQ& a, int64_t r0, int64_t nr, float* y, int64_t ldy, int n,
                 const float* bias);
// Vectorised quantize_act row (AVX-512); false when not available.
bool quantize_act_row_avx512(const float* x, int64_t k, int8_t* q, float* d);
bool cpu_vnni();

}  // namespace vg::qmm
