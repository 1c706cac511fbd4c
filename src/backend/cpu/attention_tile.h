// The online-softmax steps shared by the float32 and bf16 flash attention
// kernels (they differ only in how they multiply the tiles).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "backend/cpu/vec_math.h"

namespace vg {

// One key tile for `rows` query rows: scores s [rows, kn] (keys k0.. of a
// block starting at query q0) become exp(s - running max), zero where causal
// masking hides them; o [rows, d] is rescaled when a row's max grows; m and l
// are the running max and sum of each row.
inline void online_softmax_tile(float* s, int64_t rows, int64_t kn, bool causal, int64_t q0, int64_t k0, float* o,
                                int64_t d, float* m, float* l) {
  for (int64_t r = 0; r < rows; ++r) {
    float* row = s + r * kn;
    const int64_t valid = causal ? std::clamp<int64_t>(q0 + r + 1 - k0, 0, kn) : kn;
    if (valid == 0) {
      std::fill(row, row + kn, 0.0f);
      continue;
    }
    const float mnew = std::max(m[r], vec::max(row, valid));
    const float corr = std::exp(m[r] - mnew);  // 0 on the first tile
    const float sum = vec::exp_sub_sum(row, valid, mnew);
    std::fill(row + valid, row + kn, 0.0f);
    if (corr != 1.0f) vec::scale(o + r * d, d, corr);
    l[r] = l[r] * corr + sum;
    m[r] = mnew;
  }
}

// dst row r (stride c) = o row r / l[r].
inline void write_normalised(const float* o, int64_t rows, int64_t d, const float* l, float* dst, int64_t c) {
  for (int64_t r = 0; r < rows; ++r) {
    const float inv = 1.0f / l[r];
    for (int64_t j = 0; j < d; ++j) dst[r * c + j] = o[r * d + j] * inv;
  }
}

}  // namespace vg
