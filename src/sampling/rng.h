// The noise source samplers draw from. Two implementations: torch's CPU
// generator ("cpu", diffusers/ComfyUI seeds) and torch's CUDA Philox
// generator ("philox", A1111/Forge "GPU" seeds). Every draw that lands on
// latents goes through randn_nhwc so the values follow torch's NCHW order.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace vg {

class Rng {
 public:
  virtual ~Rng() = default;
  // torch.randn(numel) as float32, advancing the generator as torch does.
  virtual std::vector<float> randn(int64_t numel) = 0;
  Tensor randn_tensor(const Shape& shape);
  // torch.randn([N,C,H,W]) laid out as NHWC [N,H,W,C] (the engine's latent layout).
  virtual Tensor randn_nhwc(const Shape& nhwc);
};

// kind: "cpu" | "philox" (aliases "gpu", "nv", "cuda"). Throws invalid_argument otherwise.
std::unique_ptr<Rng> make_rng(const std::string& kind, uint64_t seed);
std::string canonical_rng_name(const std::string& kind);  // "" if unknown

}  // namespace vg
