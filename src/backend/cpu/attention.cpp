#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "backend/cpu/layers.h"
#include "backend/cpu/ops.h"
#include "core/error.h"

namespace vg {

namespace {
constexpr int64_t kQueryBlock = 64;
}

Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, int heads, bool causal) {
  const int64_t b = q.dim(0), tq = q.dim(1), c = q.dim(2), tk = k.dim(1);
  if (k.dim(2) != c || v.dim(2) != c || v.dim(1) != tk || k.dim(0) != b || c % heads != 0)
    fail(ErrorCode::kInternal, "attention: bad shapes " + shape_str(q.shape()) + " " +
                                   shape_str(k.shape()));
  const int64_t d = c / heads;
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  Tensor out({b, tq, c});
  const int64_t qblocks = (tq + kQueryBlock - 1) / kQueryBlock;
  const int64_t work = b * heads * qblocks;
  const float* qd = q.data();
  const float* kd = k.data();
  const float* vd = v.data();
  float* od = out.data();
#pragma omp parallel
  {
    // Per-thread score tile of kQueryBlock x Tk floats, kept across calls so
    // steady-state steps do not allocate.
    thread_local std::vector<float> scores;
    if (scores.size() < static_cast<size_t>(kQueryBlock * tk)) scores.resize(static_cast<size_t>(kQueryBlock * tk));
#pragma omp for schedule(dynamic)
    for (int64_t wi = 0; wi < work; ++wi) {
      const int64_t bi = wi / (heads * qblocks);
      const int64_t hi = (wi / qblocks) % heads;
      const int64_t q0 = (wi % qblocks) * kQueryBlock;
      const int64_t rows = std::min(kQueryBlock, tq - q0);
      const float* qp = qd + (bi * tq + q0) * c + hi * d;
      const float* kp = kd + bi * tk * c + hi * d;
      const float* vp = vd + bi * tk * c + hi * d;
      float* s = scores.data();
      sgemm(false, true, rows, tk, d, scale, qp, c, kp, c, 0.0f, s, tk);
      for (int64_t r = 0; r < rows; ++r) {
        float* row = s + r * tk;
        const int64_t valid = causal ? std::min(tk, q0 + r + 1) : tk;
        float mx = -std::numeric_limits<float>::infinity();
        for (int64_t j = 0; j < valid; ++j) mx = std::max(mx, row[j]);
        float sum = 0;
        for (int64_t j = 0; j < valid; ++j) {
          row[j] = std::exp(row[j] - mx);
          sum += row[j];
        }
        const float inv = 1.0f / sum;
        for (int64_t j = 0; j < valid; ++j) row[j] *= inv;
        for (int64_t j = valid; j < tk; ++j) row[j] = 0.0f;
      }
      sgemm(false, false, rows, d, tk, 1.0f, s, tk, vp, c, 0.0f, od + (bi * tq + q0) * c + hi * d, c);
    }
  }
  return out;
}

}  // namespace vg
