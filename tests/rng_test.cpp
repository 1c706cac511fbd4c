#include "sampling/torch_rng.h"

#include "backend/cpu/ops.h"

#include <regex>

#include "test_util.h"

namespace vg {
namespace {

Shape parse_shape(const std::string& s) {
  Shape out;
  size_t pos = 0;
  while (pos < s.size()) {
    size_t x = s.find('x', pos);
    out.push_back(std::stoll(s.substr(pos, x - pos)));
    if (x == std::string::npos) break;
    pos = x + 1;
  }
  return out;
}

struct RngCase {
  std::string name, kind, shapes;
  uint64_t seed;
  int call = 0;
  bool seq = false;
};

// name: cpu.randn.seed42.1x4x8x8 / cpu.randn_seq.seed0.7_then_17.call1
bool parse_name(const std::string& name, RngCase* c) {
  static const std::regex re(R"(^(cpu|cpu_scalar)\.(randn|rand|randn_f64|randn_seq)\.seed(\d+)\.([0-9x_then]+)(?:\.call(\d+))?$)");
  std::smatch m;
  if (!std::regex_match(name, m, re)) return false;
  c->name = name;
  c->kind = m[2];
  c->seed = std::stoull(m[3]);
  c->shapes = m[4];
  c->seq = c->kind == "randn_seq";
  c->call = m[5].matched ? std::stoi(m[5]) : 0;
  return true;
}

void check_file(const std::string& prefix, TorchKernel kernel, double tol, int* checked) {
  auto f = SafetensorsFile::open(test::tiny() + "/rng/rng.safetensors");
  for (auto& [name, info] : f->tensors()) {
    RngCase c;
    if (name.rfind(prefix + ".", 0) != 0 || !parse_name(name, &c)) continue;
    TorchCpuGenerator gen(c.seed, kernel);
    std::vector<float> got;
    if (c.seq) {
      std::vector<Shape> shapes;
      std::string s = c.shapes;
      size_t pos;
      while ((pos = s.find("_then_")) != std::string::npos) {
        shapes.push_back(parse_shape(s.substr(0, pos)));
        s = s.substr(pos + 6);
      }
      shapes.push_back(parse_shape(s));
      for (int k = 0; k <= c.call; ++k) got = gen.randn(shape_numel(shapes[k]));
    } else {
      int64_t n = shape_numel(parse_shape(c.shapes));
      if (c.kind == "randn") got = gen.randn(n);
      else if (c.kind == "rand") got = gen.rand(n);
      else {
        auto d = gen.randn_f64(n);
        got.assign(d.begin(), d.end());
      }
    }
    Tensor ref = f->load_f32(name);
    ASSERT_EQ(static_cast<int64_t>(got.size()), ref.numel()) << name;
    double err = test::max_abs_diff(got.data(), ref.data(), ref.numel());
    EXPECT_LE(err, tol) << name;
    ++*checked;
  }
}

}  // namespace


TEST(TorchRng, CpuMatchesTorchAvx2Kernel) {
  int n = 0;
  check_file("cpu", TorchKernel::kAvx2, 0.0, &n);
  EXPECT_GE(n, 80);
}

TEST(TorchRng, ScalarKernelMatchesCpuScalarCases) {
  int n = 0;
  check_file("cpu_scalar", TorchKernel::kScalar, 0.0, &n);
  EXPECT_GE(n, 30);
}

TEST(TorchRng, NhwcDrawIsTorchNchwDrawTransposed) {
  TorchCpuGenerator a(3), b(3);
  Tensor nchw = a.randn_tensor({2, 4, 3, 5});
  Tensor nhwc = b.randn_nhwc({2, 3, 5, 4});
  Tensor want = nchw_to_nhwc(nchw);
  ASSERT_EQ(nhwc.shape(), want.shape());
  EXPECT_EQ(test::max_abs_diff(nhwc.data(), want.data(), want.numel()), 0.0);
  EXPECT_EQ(a.random(), b.random());  // both advanced the generator equally
}

TEST(TorchRng, SeedTruncatesTo32Bits) {
  TorchCpuGenerator a(0), b(1ull << 32);
  EXPECT_EQ(a.randn(20), b.randn(20));
}

}  // namespace vg

namespace vg {
namespace {

// philox.randn.seed<S>.<shape> and philox.randn_seq.seed<S>.<A>_then_<B>.call<k>
TEST(PhiloxRng, MatchesA1111GpuSeeds) {
  auto f = SafetensorsFile::open(test::tiny() + "/rng/rng.safetensors");
  static const std::regex re(R"(^philox\.(randn|randn_seq)\.seed(\d+)\.([0-9x_then]+?)(?:\.call(\d+))?$)");
  int checked = 0;
  for (auto& [name, info] : f->tensors()) {
    std::smatch m;
    if (!std::regex_match(name, m, re)) continue;
    auto rng = make_rng("philox", std::stoull(m[2]));
    Tensor ref = f->load_f32(name);
    std::vector<float> got;
    const int calls = m[4].matched ? std::stoi(m[4]) + 1 : 1;
    for (int k = 0; k < calls; ++k) got = rng->randn(ref.numel());
    double worst = 0;
    for (int64_t i = 0; i < ref.numel(); ++i)
      worst = std::max(worst, std::fabs(got[i] - ref.data()[i]) / std::max(1.0, std::fabs(double(ref.data()[i]))));
    EXPECT_LE(worst, 1e-6) << name;
    ++checked;
  }
  EXPECT_GE(checked, 25);
}

TEST(PhiloxRng, DiffersFromCpuAndAdvancesPerCall) {
  auto a = make_rng("philox", 42), b = make_rng("cpu", 42);
  auto first = a->randn(16);
  EXPECT_NE(first, b->randn(16));
  EXPECT_NE(first, a->randn(16));  // offset moved on
  EXPECT_EQ(canonical_rng_name("GPU"), "philox");
  EXPECT_THROW(make_rng("mersenne", 1), VgException);
}

}  // namespace
}  // namespace vg
