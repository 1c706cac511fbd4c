#include "sampling/torch_rng.h"

#include <cmath>
#include <cstring>

namespace vg {

namespace {

constexpr double kPi = 3.14159265358979323846;

inline float bits_f(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline uint32_t f_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
// torch's AVX2 kernels are compiled with FMA contraction, so mul+add pairs fuse.
inline float madd(float a, float b, float c) { return std::fma(a, b, c); }

// torch's normal_fill for n >= 16: uniforms for the whole buffer first, then
// Box-Muller per block of 16 on the pairs (i, i+8); a size that is not a
// multiple of 16 recomputes the last 16 outputs from 16 fresh uniforms.
template <typename T, typename Uniform, typename Fill16>
void normal_fill(std::vector<T>& out, Uniform uniform, Fill16 fill16) {
  const int64_t n = static_cast<int64_t>(out.size());
  for (auto& v : out) v = uniform();
  for (int64_t i = 0; i + 16 <= n; i += 16) fill16(out.data() + i);
  if (n % 16 != 0) {
    T* tail = out.data() + n - 16;
    for (int i = 0; i < 16; ++i) tail[i] = uniform();
    fill16(tail);
  }
}

}  // namespace

float cephes_logf(float x) {
  if (x <= 0.0f) return NAN;
  const float min_norm = bits_f(0x00800000u);
  if (x < min_norm) x = min_norm;
  uint32_t bits = f_bits(x);
  int32_t imm0 = static_cast<int32_t>(bits >> 23) - 0x7f;
  x = bits_f((bits & ~0x7f800000u) | f_bits(0.5f));
  float e = static_cast<float>(imm0) + 1.0f;
  const bool lt = x < 0.707106781186547524f;
  float tmp = lt ? x : 0.0f;
  x = x - 1.0f;
  e = e - (lt ? 1.0f : 0.0f);
  x = x + tmp;
  float z = x * x;
  float y = 7.0376836292E-2f;
  y = madd(y, x, -1.1514610310E-1f);
  y = madd(y, x, 1.1676998740E-1f);
  y = madd(y, x, -1.2420140846E-1f);
  y = madd(y, x, 1.4249322787E-1f);
  y = madd(y, x, -1.6668057665E-1f);
  y = madd(y, x, 2.0000714765E-1f);
  y = madd(y, x, -2.4999993993E-1f);
  y = madd(y, x, 3.3333331174E-1f);
  y = y * x;
  // GCC contracts (y*z) + (e*q1) into one FMA; e*q1 is rounded on its own.
  y = madd(y, z, e * -2.12194440e-4f);
  y = y - z * 0.5f;  // z*0.5 is exact
  x = x + y;
  x = madd(e, 0.693359375f, x);
  return x;
}

void cephes_sincosf(float xin, float* s_out, float* c_out) {
  uint32_t sign_sin = f_bits(xin) & 0x80000000u;
  float x = std::fabs(xin);
  float y = x * 1.27323954473516f;
  int32_t j = static_cast<int32_t>(y);
  j = (j + 1) & ~1;
  y = static_cast<float>(j);
  const uint32_t swap_sign_sin = static_cast<uint32_t>(j & 4) << 29;
  const bool poly_mask = (j & 2) == 0;
  x = madd(y, -0.78515625f, x);
  x = madd(y, -2.4187564849853515625e-4f, x);
  x = madd(y, -3.77489497744594108e-8f, x);
  const uint32_t sign_cos = static_cast<uint32_t>(~(j - 2) & 4) << 29;
  sign_sin ^= swap_sign_sin;
  const float z = x * x;
  float yc = 2.443315711809948E-005f;
  yc = madd(yc, z, -1.388731625493765E-003f);
  yc = madd(yc, z, 4.166664568298827E-002f);
  yc = yc * z;
  yc = madd(yc, z, -(z * 0.5f));
  yc = yc + 1.0f;
  float ys = -1.9515295891E-4f;
  ys = madd(ys, z, 8.3321608736E-3f);
  ys = madd(ys, z, -1.6666654611E-1f);
  ys = ys * z;
  ys = madd(ys, x, x);
  const float sin_v = poly_mask ? ys : yc;
  const float cos_v = poly_mask ? yc : ys;
  *s_out = bits_f(f_bits(sin_v) ^ sign_sin);
  *c_out = bits_f(f_bits(cos_v) ^ sign_cos);
}

TorchCpuGenerator::TorchCpuGenerator(uint64_t seed, TorchKernel kernel) : kernel_(kernel) {
  manual_seed(seed);
}

void TorchCpuGenerator::manual_seed(uint64_t seed) {
  engine_.seed(static_cast<uint32_t>(seed & 0xffffffffu));  // torch keeps the low 32 bits
  next_double_normal_.reset();
}

uint64_t TorchCpuGenerator::random64() {
  const uint64_t hi = engine_();
  const uint64_t lo = engine_();
  return (hi << 32) | lo;
}

double TorchCpuGenerator::normal_scalar_double() {
  if (next_double_normal_) {
    double v = *next_double_normal_;
    next_double_normal_.reset();
    return v;
  }
  const double u1 = uniform_f64();
  const double u2 = uniform_f64();
  const double r = std::sqrt(-2.0 * std::log(1.0 - u2));
  const double theta = 2.0 * kPi * u1;
  next_double_normal_ = r * std::sin(theta);
  return r * std::cos(theta);
}

std::vector<float> TorchCpuGenerator::randn(int64_t n) {
  std::vector<float> out(static_cast<size_t>(n));
  if (n < 16) {
    for (auto& v : out) v = static_cast<float>(normal_scalar_double());
    return out;
  }
  const float two_pi = static_cast<float>(2.0 * kPi);
  auto fill16 = [&](float* d) {
    for (int j = 0; j < 8; ++j) {
      const float u1 = 1.0f - d[j];
      const float u2 = d[j + 8];
      if (kernel_ == TorchKernel::kAvx2) {
        const float radius = std::sqrt(-2.0f * cephes_logf(u1));
        float s, c;
        cephes_sincosf(two_pi * u2, &s, &c);
        d[j] = radius * c;
        d[j + 8] = radius * s;
      } else {
        const float radius = std::sqrt(-2.0f * std::log(u1));
        const float theta = static_cast<float>(2.0f * kPi * u2);
        d[j] = radius * std::cos(theta);
        d[j + 8] = radius * std::sin(theta);
      }
    }
  };
  normal_fill(out, [this] { return uniform_f32(); }, fill16);
  return out;
}

std::vector<double> TorchCpuGenerator::randn_f64(int64_t n) {
  std::vector<double> out(static_cast<size_t>(n));
  if (n < 16) {
    for (auto& v : out) v = normal_scalar_double();
    return out;
  }
  auto fill16 = [&](double* d) {
    for (int j = 0; j < 8; ++j) {
      const double u1 = 1.0 - d[j], u2 = d[j + 8];
      const double radius = std::sqrt(-2.0 * std::log(u1));
      const double theta = 2.0 * kPi * u2;
      d[j] = radius * std::cos(theta);
      d[j + 8] = radius * std::sin(theta);
    }
  };
  normal_fill(out, [this] { return uniform_f64(); }, fill16);
  return out;
}

std::vector<float> TorchCpuGenerator::rand(int64_t n) {
  std::vector<float> out(static_cast<size_t>(n));
  for (auto& v : out) v = uniform_f32();
  return out;
}

}  // namespace vg
