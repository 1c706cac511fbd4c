// torch's CUDA generator as A1111's rng_philox reproduces it: Philox-4x32-10
// keyed by the seed, counter (offset, 0, index, 0), one Box-Muller value per
// element; each randn call advances the offset by one.
#pragma once
#include "sampling/rng.h"

namespace vg {

class PhiloxGenerator : public Rng {
 public:
  explicit PhiloxGenerator(uint64_t seed) : seed_(seed) {}
  std::vector<float> randn(int64_t numel) override;

 private:
  uint64_t seed_;
  uint32_t offset_ = 0;
};

}  // namespace vg
