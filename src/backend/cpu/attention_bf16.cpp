// bf16 attention: the same tiling and online softmax as the float32 kernel,
// with QK^T and PV as oneDNN bf16 matmuls (float32 scores and accumulation).
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>
#include <vector>

#include "backend/cpu/attention_tile.h"
#include "backend/cpu/bf16.h"
#include "backend/cpu/dnnl_context.h"
#include "backend/cpu/ops.h"
#include "backend/cpu/vec_math.h"
#include "core/error.h"

namespace vg {

namespace {

using dt = dnnl::memory::data_type;

constexpr int64_t kQueryBlock = 128, kKeyBlock = 512;

// QK^T: A = Q block [rows, d] (row stride c), B = K tile seen as [d, kn]
// (column stride c), C = scores [rows, kn]. PV: A = P [rows, kn], B = V tile
// [kn, d] (row stride c), C += O [rows, d].
struct MatmulKey {
  bool pv;
  int64_t rows, kn, d, c;
  bool operator<(const MatmulKey& o) const { return std::tie(pv, rows, kn, d, c) < std::tie(o.pv, o.rows, o.kn, o.d, o.c); }
};

struct Matmul {
  dnnl::matmul prim;
  dnnl::memory::desc a, b, dst, scratch;
};

const Matmul& get_matmul(const MatmulKey& k) {
  static std::mutex mu;
  static std::map<MatmulKey, std::unique_ptr<Matmul>> cache;
  std::lock_guard<std::mutex> l(mu);
  auto it = cache.find(k);
  if (it != cache.end()) return *it->second;
  auto m = std::make_unique<Matmul>();
  if (!k.pv) {
    m->a = dnnl::memory::desc({k.rows, k.d}, dt::bf16, {k.c, 1});
    m->b = dnnl::memory::desc({k.d, k.kn}, dt::bf16, {1, k.c});
    m->dst = dnnl::memory::desc({k.rows, k.kn}, dt::f32, {k.kn, 1});
  } else {
    m->a = dnnl::memory::desc({k.rows, k.kn}, dt::bf16, {k.kn, 1});
    m->b = dnnl::memory::desc({k.kn, k.d}, dt::bf16, {k.c, 1});
    m->dst = dnnl::memory::desc({k.rows, k.d}, dt::f32, {k.d, 1});
  }
  dnnl::primitive_attr attr;
  // These matmuls run on several threads at once: each thread passes its own
  // scratchpad (with the library's, threads shared the copy buffers of large
  // heads, e.g. the VAE's 512, and results varied from run to run).
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  if (k.pv) {
    dnnl::post_ops ops;
    ops.append_sum(1.0f);
    attr.set_post_ops(ops);
  }
  dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(m->a, m->b, m->dst), attr, dnnl_engine());
  m->prim = dnnl::matmul(pd);
  m->scratch = pd.scratchpad_desc();
  auto& ref = *m;
  cache.emplace(k, std::move(m));
  return ref;
}

void run(const Matmul& m, dnnl::stream& s, const void* a, const void* b, float* dst) {
  auto& eng = dnnl_engine();
  thread_local std::vector<uint8_t> scratch;  // this thread's scratchpad
  if (scratch.size() < m.scratch.get_size()) scratch.resize(m.scratch.get_size());
  m.prim.execute(s, {{DNNL_ARG_SRC, dnnl::memory(m.a, eng, const_cast<void*>(a))},
                     {DNNL_ARG_WEIGHTS, dnnl::memory(m.b, eng, const_cast<void*>(b))},
                     {DNNL_ARG_DST, dnnl::memory(m.dst, eng, dst)},
                     {DNNL_ARG_SCRATCHPAD, dnnl::memory(m.scratch, eng, scratch.data())}});
}

}  // namespace

Tensor attention_bf16(const Tensor& q, const Tensor& k, const Tensor& v, int heads, bool causal) {
  const int64_t b = q.dim(0), tq = q.dim(1), c = q.dim(2), tk = k.dim(1);
  const int64_t d = c / heads;
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  uint16_t* qb = bf16_scratch(1, q.numel());
  uint16_t* kb16 = bf16_scratch(2, k.numel());
  uint16_t* vb = bf16_scratch(3, v.numel());
  to_bf16_scaled(q.data(), qb, q.numel(), scale);  // the softmax scale folded into Q
  to_bf16(k.data(), kb16, k.numel());
  to_bf16(v.data(), vb, v.numel());
  Tensor out({b, tq, c});
  const int64_t qblocks = (tq + kQueryBlock - 1) / kQueryBlock;
  const int64_t work = b * heads * qblocks;
  const int64_t kb = std::min(kKeyBlock, tk);
  float* od = out.data();
#pragma omp parallel
  {
    thread_local std::vector<float> scores, acc, mrow, lrow;
    thread_local std::vector<uint16_t> probs;
    thread_local std::unique_ptr<dnnl::stream> stream;  // one stream per thread
    if (!stream) stream = std::make_unique<dnnl::stream>(dnnl_engine());
    if (scores.size() < static_cast<size_t>(kQueryBlock * kb)) scores.resize(static_cast<size_t>(kQueryBlock * kb));
    if (probs.size() < static_cast<size_t>(kQueryBlock * kb)) probs.resize(static_cast<size_t>(kQueryBlock * kb));
    if (acc.size() < static_cast<size_t>(kQueryBlock * d)) acc.resize(static_cast<size_t>(kQueryBlock * d));
    if (mrow.size() < static_cast<size_t>(kQueryBlock)) mrow.resize(kQueryBlock), lrow.resize(kQueryBlock);
#pragma omp for schedule(dynamic)
    for (int64_t wi = 0; wi < work; ++wi) {
      const int64_t bi = wi / (heads * qblocks);
      const int64_t hi = (wi / qblocks) % heads;
      const int64_t q0 = (wi % qblocks) * kQueryBlock;
      const int64_t rows = std::min(kQueryBlock, tq - q0);
      const uint16_t* qp = qb + (bi * tq + q0) * c + hi * d;
      float* s = scores.data();
      float* o = acc.data();
      std::fill(o, o + rows * d, 0.0f);
      std::fill(mrow.begin(), mrow.begin() + rows, -std::numeric_limits<float>::infinity());
      std::fill(lrow.begin(), lrow.begin() + rows, 0.0f);
      const int64_t kend = causal ? std::min(tk, q0 + rows) : tk;
      for (int64_t k0 = 0; k0 < kend; k0 += kb) {
        const int64_t kn = std::min(kb, kend - k0);
        const uint16_t* kp = kb16 + (bi * tk + k0) * c + hi * d;
        const uint16_t* vp = vb + (bi * tk + k0) * c + hi * d;
        run(get_matmul({false, rows, kn, d, c}), *stream, qp, kp, s);
        stream->wait();
        online_softmax_tile(s, rows, kn, causal, q0, k0, o, d, mrow.data(), lrow.data());
        to_bf16(s, probs.data(), rows * kn);
        run(get_matmul({true, rows, kn, d, c}), *stream, probs.data(), vp, o);
        stream->wait();
      }
      write_normalised(o, rows, d, lrow.data(), od + (bi * tq + q0) * c + hi * d, c);
    }
  }
  return out;
}

}  // namespace vg
