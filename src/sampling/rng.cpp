#include "sampling/rng.h"

#include <cctype>

#include "core/error.h"
#include "sampling/philox_rng.h"
#include "sampling/torch_rng.h"

namespace vg {

Tensor Rng::randn_tensor(const Shape& shape) {
  auto v = randn(shape_numel(shape));
  return Tensor::from(shape, v.data());
}

Tensor Rng::randn_nhwc(const Shape& nhwc) {
  const int64_t n = nhwc.at(0), h = nhwc.at(1), w = nhwc.at(2), c = nhwc.at(3);
  auto v = randn(n * c * h * w);  // drawn in torch's NCHW order
  Tensor t(nhwc);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t ch = 0; ch < c; ++ch)
      for (int64_t p = 0; p < h * w; ++p) t.data()[(i * h * w + p) * c + ch] = v[(i * c + ch) * h * w + p];
  return t;
}

std::string canonical_rng_name(const std::string& kind) {
  std::string k;
  for (char ch : kind) k += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  if (k == "cpu" || k == "torch") return "cpu";
  if (k == "philox" || k == "gpu" || k == "nv" || k == "cuda") return "philox";
  return "";
}

std::unique_ptr<Rng> make_rng(const std::string& kind, uint64_t seed) {
  const std::string k = canonical_rng_name(kind);
  if (k == "cpu") return std::make_unique<TorchCpuGenerator>(seed);
  if (k == "philox") return std::make_unique<PhiloxGenerator>(seed);
  fail(ErrorCode::kInvalidArgument, "unknown rng '" + kind + "'; use 'cpu' (torch CPU, diffusers/ComfyUI seeds) or 'philox' (torch CUDA, A1111 GPU seeds)");
}

}  // namespace vg
