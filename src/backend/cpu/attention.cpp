#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <cmath>
#include <limits>
#include <vector>

#include "backend/cpu/attention_tile.h"
#include "backend/cpu/layers.h"
#include "backend/cpu/ops.h"
#include "backend/cpu/vec_math.h"
#include "core/profile.h"
#include "core/arena.h"
#include "core/error.h"

namespace vg {

namespace {

int64_t env_or(const char* name, int64_t dflt) {
  const char* v = std::getenv(name);
  return v && std::atol(v) > 0 ? std::atol(v) : dflt;
}

// Query rows per work item and keys per tile: the score tile (rows x keys)
// and the running output stay in L2 while K/V tiles stream through.
const int64_t kQueryBlock = env_or("VG_ATTN_QBLOCK", 128);
const int64_t kKeyBlock = env_or("VG_ATTN_KBLOCK", 512);

}  // namespace

// Flash-style: per (batch, head, query block), keys in tiles with an online
// softmax (running max and sum per row, output rescaled when the max grows).
Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, int heads, bool causal, bool bf16) {
  profile::Scope prof_("attention");
  const int64_t b = q.dim(0), tq = q.dim(1), c = q.dim(2), tk = k.dim(1);
  if (k.dim(2) != c || v.dim(2) != c || v.dim(1) != tk || k.dim(0) != b || c % heads != 0)
    fail(ErrorCode::kInternal, "attention: bad shapes " + shape_str(q.shape()) + " " + shape_str(k.shape()));
  if (dry_run_active()) return Tensor({b, tq, c});  // planning pass
  if (bf16) return attention_bf16(q, k, v, heads, causal);
  const int64_t d = c / heads;
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  Tensor out({b, tq, c});
  const int64_t qblocks = (tq + kQueryBlock - 1) / kQueryBlock;
  const int64_t work = b * heads * qblocks;
  const int64_t kb = std::min(kKeyBlock, tk);
  const float* qd = q.data();
  const float* kd = k.data();
  const float* vd = v.data();
  float* od = out.data();
#pragma omp parallel
  {
    // Per-thread tiles kept across calls so steady-state steps do not allocate.
    thread_local std::vector<float> scores, acc, mrow, lrow;
    if (scores.size() < static_cast<size_t>(kQueryBlock * kb)) scores.resize(static_cast<size_t>(kQueryBlock * kb));
    if (acc.size() < static_cast<size_t>(kQueryBlock * d)) acc.resize(static_cast<size_t>(kQueryBlock * d));
    if (mrow.size() < static_cast<size_t>(kQueryBlock)) mrow.resize(kQueryBlock), lrow.resize(kQueryBlock);
#pragma omp for schedule(dynamic)
    for (int64_t wi = 0; wi < work; ++wi) {
      const int64_t bi = wi / (heads * qblocks);
      const int64_t hi = (wi / qblocks) % heads;
      const int64_t q0 = (wi % qblocks) * kQueryBlock;
      const int64_t rows = std::min(kQueryBlock, tq - q0);
      const float* qp = qd + (bi * tq + q0) * c + hi * d;
      float* s = scores.data();
      float* o = acc.data();
      std::fill(o, o + rows * d, 0.0f);
      std::fill(mrow.begin(), mrow.begin() + rows, -std::numeric_limits<float>::infinity());
      std::fill(lrow.begin(), lrow.begin() + rows, 0.0f);
      const int64_t kend = causal ? std::min(tk, q0 + rows) : tk;
      for (int64_t k0 = 0; k0 < kend; k0 += kb) {
        const int64_t kn = std::min(kb, kend - k0);
        const float* kp = kd + (bi * tk + k0) * c + hi * d;
        const float* vp = vd + (bi * tk + k0) * c + hi * d;
        sgemm(false, true, rows, kn, d, scale, qp, c, kp, c, 0.0f, s, kn);
        online_softmax_tile(s, rows, kn, causal, q0, k0, o, d, mrow.data(), lrow.data());
        sgemm(false, false, rows, d, kn, 1.0f, s, kn, vp, c, 1.0f, o, d);
      }
      write_normalised(o, rows, d, lrow.data(), od + (bi * tq + q0) * c + hi * d, c);
    }
  }
  return out;
}

}  // namespace vg
