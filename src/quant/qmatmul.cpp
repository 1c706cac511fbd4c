#include "quant/qmatmul.h"

#include <omp.h>

#include <cctype>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "backend/cpu/layers.h"
#include "core/error.h"
#include "quant/ggml_types.h"
#include "quant/qmm_internal.h"

namespace vg {

size_t QMatrix::row_bytes() const { return ggml_row_bytes(type, in); }

bool qmm_int8_supports(int type) { return qmm::group_size(type) > 0; }
bool qmm_int8_native() { return qmm::cpu_vnni(); }

const char* qmm_path_name(QmmPath p) {
  return p == QmmPath::kInt8 ? "int8" : p == QmmPath::kTile ? "tile" : "auto";
}

int ggml_type_from_name(const std::string& name) {
  std::string s(name);
  for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  for (int id = 0; id < 40; ++id)
    if (const GgmlTypeInfo* t = ggml_type_info(id); t && s == t->name) return id;
  return -1;
}

QmmPath qmm_choose(int type, int64_t m, int64_t out, int64_t in) {
  static const std::string env = [] {
    const char* e = std::getenv("VG_QMM");
    return std::string(e ? e : "");
  }();
  const bool int8_ok = qmm_int8_supports(type) && in % 32 == 0;
  if (env == "tile" || !int8_ok) return QmmPath::kTile;
  if (env == "int8") return QmmPath::kInt8;
  // Measured on AMD Zen 4 (docs/performance.md, one thread): the VNNI kernel
  // is ~2x sgemm from m = 64 rows on (UNet shapes), even at m = 32; below,
  // packing the weight codes costs more than dequantising tiles. Without
  // VNNI the tile path wins everywhere.
  return qmm_int8_native() && m >= 32 ? QmmPath::kInt8 : QmmPath::kTile;
}

namespace {

void run_tile(const QMatrix& w, const float* x, int64_t m, float* y, const float* bias) {
  const int64_t nt = qmm::tile_rows(w.in), ntiles = (w.out + nt - 1) / nt;
  const size_t rb = w.row_bytes();
  if (bias) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < m; ++i) std::memcpy(y + i * w.out, bias, static_cast<size_t>(w.out) * sizeof(float));
  }
#pragma omp parallel for schedule(dynamic)
  for (int64_t t = 0; t < ntiles; ++t) {
    const int64_t o0 = t * nt, n = std::min(nt, w.out - o0);
    thread_local std::vector<float> scratch;
    scratch.resize(static_cast<size_t>(n * w.in));
    for (int64_t r = 0; r < n; ++r)
      dequantize_row(w.type, w.data + static_cast<size_t>(o0 + r) * rb, scratch.data() + r * w.in, w.in);
    // inside the parallel region oneDNN's sgemm runs on this thread alone
    sgemm(false, true, m, n, w.in, 1.0f, x, w.in, scratch.data(), w.in, bias ? 1.0f : 0.0f, y + o0, w.out);
  }
}

void run_int8(const QMatrix& w, const float* x, int64_t m, float* y, const float* bias) {
  const int g = qmm::group_size(w.type);
  thread_local qmm::ActQ act;  // the caller's thread; reused across calls
  qmm::quantize_act(x, m, w.in, g, &act);
  const bool vnni = qmm::cpu_vnni();
  const int64_t nblocks = (w.out + qmm::kCols - 1) / qmm::kCols;
  const size_t rb = w.row_bytes();
  const qmm::ActQ& a = act;
  // Rows of x per pass over a packed block: its activations stay in L2.
  const int64_t mchunk = std::max<int64_t>(4, (256 * 1024) / std::max<int64_t>(w.in, 1) / 4 * 4);
#pragma omp parallel for schedule(dynamic)
  for (int64_t blk = 0; blk < nblocks; ++blk) {
    const int64_t o0 = blk * qmm::kCols;
    const int n = static_cast<int>(std::min<int64_t>(qmm::kCols, w.out - o0));
    thread_local qmm::Packed p;
    qmm::pack(w.type, w.data + static_cast<size_t>(o0) * rb, rb, n, w.in, &p);
    for (int64_t r0 = 0; r0 < m; r0 += mchunk) {
      const int64_t nr = std::min(mchunk, m - r0);
      if (vnni) qmm::kernel_vnni(p, a, r0, nr, y + o0, w.out, n, bias ? bias + o0 : nullptr);
      else qmm::kernel_scalar(p, a, r0, nr, y + o0, w.out, n, bias ? bias + o0 : nullptr);
    }
  }
}

}  // namespace

void qmatmul(const QMatrix& w, const float* x, int64_t m, float* y, const float* bias, QmmPath path) {
  const GgmlTypeInfo* t = ggml_type_info(w.type);
  if (!t || !t->dequantizable || w.in % t->block_elems != 0 || w.out <= 0)
    fail(ErrorCode::kInvalidArgument, std::string("qmatmul: cannot multiply a ") + ggml_type_name(w.type) + " matrix [" +
                                          std::to_string(w.out) + ", " + std::to_string(w.in) +
                                          "]; rows must be whole blocks of a decodable type");
  if (m <= 0) return;
  if (path == QmmPath::kAuto) path = qmm_choose(w.type, m, w.out, w.in);
  if (path == QmmPath::kInt8 && !(qmm_int8_supports(w.type) && w.in % 32 == 0))
    fail(ErrorCode::kInvalidArgument, std::string("qmatmul: the int8 path does not handle ") + t->name);
  if (path == QmmPath::kInt8) run_int8(w, x, m, y, bias);
  else run_tile(w, x, m, y, bias);
}

}  // namespace vg
