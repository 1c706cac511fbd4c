// qmatmul: linear layers straight from ggml blocks, against float64 products
// of the exactly dequantised weights.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "backend/cpu/layers.h"
#include "core/dtype.h"
#include "core/error.h"
#include "quant/ggml_types.h"
#include "quant/qmatmul.h"
#include "quant/qmm_internal.h"

namespace vg {
namespace {

const int kTypes[] = {kGgmlQ8_0, kGgmlQ4_0, kGgmlQ4_1, kGgmlQ5_0, kGgmlQ5_1, kGgmlQ2_K,
                      kGgmlQ3_K, kGgmlQ4_K, kGgmlQ5_K, kGgmlQ6_K, kGgmlIQ4_NL, kGgmlIQ4_XS};

uint16_t f16_bits(float v) {
  // positive normal values only (block scales): round to nearest
  uint32_t b;
  std::memcpy(&b, &v, 4);
  const int e = static_cast<int>((b >> 23) & 255) - 127 + 15;
  const uint32_t mant = (b & 0x7fffff) + 0x1000;
  return static_cast<uint16_t>((e << 10) + (mant >> 13));
}

// Random bytes are valid blocks of every type; only the f16 scale fields are
// set to sane values (random bits could be inf/NaN).
std::vector<uint8_t> random_blocks(int type, int64_t rows, int64_t in, uint32_t seed) {
  const GgmlTypeInfo* t = ggml_type_info(type);
  std::vector<uint8_t> w(ggml_row_bytes(type, in) * rows);
  std::mt19937 rng(seed);
  for (auto& b : w) b = static_cast<uint8_t>(rng());
  std::uniform_real_distribution<float> u(0.5f, 1.5f);
  auto put = [&](uint8_t* p, float v) {
    const uint16_t h = f16_bits(v);
    std::memcpy(p, &h, 2);
  };
  for (size_t off = 0; off < w.size(); off += t->block_bytes) {
    uint8_t* b = w.data() + off;
    switch (type) {
      case kGgmlQ2_K: put(b + 80, 0.01f * u(rng)), put(b + 82, 0.01f * u(rng)); break;
      case kGgmlQ3_K: put(b + 108, 0.002f * u(rng)); break;
      case kGgmlQ6_K: put(b + 208, 0.0005f * u(rng)); break;
      case kGgmlQ4_1: case kGgmlQ5_1: case kGgmlQ4_K: case kGgmlQ5_K:
        put(b, 0.01f * u(rng)), put(b + 2, 0.01f * u(rng)); break;
      default: put(b, 0.01f * u(rng)); break;
    }
  }
  return w;
}

std::vector<float> random_x(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> x(n);
  for (auto& v : x) v = nd(rng);
  return x;
}

std::vector<float> dequant(int type, const std::vector<uint8_t>& w, int64_t rows, int64_t in) {
  std::vector<float> f(rows * in);
  for (int64_t r = 0; r < rows; ++r) dequantize_row(type, w.data() + r * ggml_row_bytes(type, in), f.data() + r * in, in);
  return f;
}

// rel L2 of y against x @ W^T + bias in float64.
double rel_l2(const std::vector<float>& y, const std::vector<float>& x, const std::vector<float>& wf,
              const std::vector<float>& bias, int64_t m, int64_t out, int64_t in) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < m; ++i)
    for (int64_t o = 0; o < out; ++o) {
      double ref = bias.empty() ? 0.0 : bias[o];
      for (int64_t k = 0; k < in; ++k) ref += static_cast<double>(x[i * in + k]) * wf[o * in + k];
      num += (y[i * out + o] - ref) * (y[i * out + o] - ref);
      den += ref * ref;
    }
  return std::sqrt(num / den);
}

// Every type through the int8 path (VNNI here, scalar elsewhere) and the
// tile path. Activation quantisation (int8 per 32 values, scale amax/127)
// costs ~0.5% rel L2 whatever the weight type; tile is float32-exact.
TEST(QMatmul, EveryTypeMatchesFloat64Product) {
  const int64_t m = 7, out = 40, in = 512;  // out not a multiple of 32: masked columns
  const std::vector<float> x = random_x(m * in, 1);
  std::vector<float> bias = random_x(out, 2);
  for (int type : kTypes) {
    SCOPED_TRACE(ggml_type_name(type));
    const std::vector<uint8_t> w = random_blocks(type, out, in, 100 + type);
    const std::vector<float> wf = dequant(type, w, out, in);
    const QMatrix q{type, w.data(), out, in, nullptr};
    std::vector<float> y(m * out);
    qmatmul(q, x.data(), m, y.data(), bias.data(), QmmPath::kInt8);
    const double e8 = rel_l2(y, x, wf, bias, m, out, in);
    EXPECT_LT(e8, 1e-2);
    EXPECT_GT(e8, 1e-5);  // activations really are quantised
    qmatmul(q, x.data(), m, y.data(), bias.data(), QmmPath::kTile);
    EXPECT_LT(rel_l2(y, x, wf, bias, m, out, in), 1e-6);
    std::printf("  %-7s int8 rel L2 %.2e\n", ggml_type_name(type), e8);
  }
}

// The tile path is sgemm on exactly dequantised weights: bit-identical to
// the same per-tile sgemm calls on the dequantised matrix (oneDNN's blocking
// differs with the shape, so a whole-matrix sgemm agrees only to rounding).
TEST(QMatmul, TilePathEqualsSgemmOnDequantisedWeights) {
  const int64_t m = 50, out = 300, in = 1024;
  const std::vector<float> x = random_x(m * in, 3);
  for (int type : {kGgmlQ8_0, kGgmlQ4_K, kGgmlQ6_K, kGgmlIQ4_XS}) {
    SCOPED_TRACE(ggml_type_name(type));
    const std::vector<uint8_t> w = random_blocks(type, out, in, 7);
    const std::vector<float> wf = dequant(type, w, out, in);
    std::vector<float> y(m * out), ref(m * out), whole(m * out);
    qmatmul({type, w.data(), out, in, nullptr}, x.data(), m, y.data(), nullptr, QmmPath::kTile);
    const int64_t nt = qmm::tile_rows(in), ntiles = (out + nt - 1) / nt;
#pragma omp parallel for schedule(dynamic)
    for (int64_t t = 0; t < ntiles; ++t)
      sgemm(false, true, m, std::min(nt, out - t * nt), in, 1.0f, x.data(), in, wf.data() + t * nt * in, in, 0.0f,
            ref.data() + t * nt, out);
    EXPECT_EQ(0, std::memcmp(y.data(), ref.data(), y.size() * sizeof(float)));
    sgemm(false, true, m, out, in, 1.0f, x.data(), in, wf.data(), in, 0.0f, whole.data(), out);
    double d = 0, mx = 0;
    for (size_t i = 0; i < y.size(); ++i) d = std::max(d, std::fabs(double(y[i]) - whole[i])), mx = std::max(mx, std::fabs(double(whole[i])));
    EXPECT_LT(d, 1e-5 * mx);
  }
}

// The VNNI kernel computes what the portable scalar kernel computes (up to
// float summation order), on the same quantised activations.
TEST(QMatmul, VnniKernelMatchesScalarKernel) {
  if (!qmm::cpu_vnni()) GTEST_SKIP() << "no AVX512-VNNI here";
  const int64_t m = 9, in = 768;
  const std::vector<float> x = random_x(m * in, 4);
  for (int type : kTypes) {
    if (in % ggml_type_info(type)->block_elems) continue;
    SCOPED_TRACE(ggml_type_name(type));
    const std::vector<uint8_t> w = random_blocks(type, 32, in, 9);
    qmm::Packed p;
    qmm::pack(type, w.data(), ggml_row_bytes(type, in), 29, in, &p);
    qmm::ActQ a;
    qmm::quantize_act(x.data(), m, in, qmm::group_size(type), &a);
    std::vector<float> ys(m * 32, 0.0f), yv(m * 32, 0.0f);
    qmm::kernel_scalar(p, a, 0, m, ys.data(), 32, 29, nullptr);
    qmm::kernel_vnni(p, a, 0, m, yv.data(), 32, 29, nullptr);
    double mx = 0, d = 0;
    for (int64_t i = 0; i < m * 32; ++i) mx = std::max(mx, std::fabs(double(ys[i]))), d = std::max(d, std::fabs(double(ys[i]) - yv[i]));
    EXPECT_LT(d, 1e-5 * mx);
    EXPECT_EQ(yv[31], 0.0f);  // column 29.. not stored
  }
}

TEST(QMatmul, RefusesUnusableMatrices) {
  std::vector<uint8_t> w(34 * 4, 0);
  std::vector<float> x(48), y(8);
  EXPECT_THROW(qmatmul({kGgmlQ8_0, w.data(), 2, 48, nullptr}, x.data(), 1, y.data()), VgException);  // 48 not whole blocks
  EXPECT_THROW(qmatmul({16, w.data(), 2, 256, nullptr}, x.data(), 1, y.data()), VgException);        // IQ2_XXS: no decoder
  EXPECT_THROW(qmatmul({kGgmlF16, w.data(), 2, 32, nullptr}, x.data(), 1, y.data(), nullptr, QmmPath::kInt8), VgException);
}

}  // namespace
}  // namespace vg
