// How a DiT family's pipeline latents map to images and back: its VAE plus
// the normalisation the pipeline applies (FLUX/SD3/Z-Image: (z - shift) *
// scale on an AutoencoderKL; Qwen-Image: (z - mean) / std per channel on the
// Wan-style VAE, run on one frame).
#pragma once
#include <memory>
#include <string>

#include "models/autoencoder_kl.h"
#include "models/wan_vae.h"
#include "sampling/rng.h"

namespace vg {

class LatentCodec {
 public:
  virtual ~LatentCodec() = default;
  virtual int64_t scale() const = 0;     // pixels per latent along each side
  virtual int64_t channels() const = 0;  // latent channels
  virtual bool has_encoder() const = 0;
  // image NHWC [1,H,W,3] in [-1,1] -> a posterior sample (eps drawn from rng, as
  // the pipelines' retrieve_latents does) in pipeline space, NHWC [1,h,w,C].
  virtual Tensor encode(const Tensor& image, Rng& rng, const std::string& tiling) const = 0;
  // Pipeline-space latents NHWC [1,h,w,C] -> image NHWC in about [-1,1].
  virtual Tensor decode(Tensor latents, const std::string& tiling) const = 0;
};

std::unique_ptr<LatentCodec> kl_latent_codec(std::unique_ptr<AutoencoderKL> vae);
std::unique_ptr<LatentCodec> wan_latent_codec(std::unique_ptr<WanVae> vae);

}  // namespace vg
