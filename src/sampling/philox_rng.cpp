#include "sampling/philox_rng.h"

#include <cmath>

namespace vg {

namespace {

constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;
constexpr uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;

void philox_round(uint32_t c[4], const uint32_t k[2]) {
  const uint64_t p0 = static_cast<uint64_t>(c[0]) * kM0;
  const uint64_t p1 = static_cast<uint64_t>(c[2]) * kM1;
  const uint32_t n0 = static_cast<uint32_t>(p1 >> 32) ^ c[1] ^ k[0];
  const uint32_t n2 = static_cast<uint32_t>(p0 >> 32) ^ c[3] ^ k[1];
  c[1] = static_cast<uint32_t>(p1);
  c[3] = static_cast<uint32_t>(p0);
  c[0] = n0;
  c[2] = n2;
}

}  // namespace

std::vector<float> PhiloxGenerator::randn(int64_t numel) {
  // rng_philox uses float32 constants but numpy promotes uint32 * float32 to
  // float64, so the Box-Muller itself runs in double.
  const double inv32 = static_cast<double>(2.3283064e-10f);
  const double inv32_2pi = static_cast<double>(static_cast<float>(2.3283064e-10 * 6.2831855));
  std::vector<float> out(static_cast<size_t>(numel));
  for (int64_t i = 0; i < numel; ++i) {
    uint32_t c[4] = {offset_, 0, static_cast<uint32_t>(i), 0};
    uint32_t k[2] = {static_cast<uint32_t>(seed_), static_cast<uint32_t>(seed_ >> 32)};
    for (int r = 0; r < 9; ++r) {
      philox_round(c, k);
      k[0] += kW0;
      k[1] += kW1;
    }
    philox_round(c, k);
    const double u = c[0] * inv32 + inv32 / 2;
    const double v = c[1] * inv32_2pi + inv32_2pi / 2;
    out[static_cast<size_t>(i)] = static_cast<float>(std::sqrt(-2.0 * std::log(u)) * std::sin(v));
  }
  ++offset_;
  return out;
}

}  // namespace vg
