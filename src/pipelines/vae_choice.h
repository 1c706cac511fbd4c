// Which autoencoder a request decodes with (--vae: a replacement VAE such as
// SDXL's fp16-fix, or a TAESD folder) and how live previews are drawn
// (--preview latent2rgb | taesd | none, TAESD from --preview-vae). Loaded
// decoders are kept for the next request that names the same path.
#pragma once
#include <memory>
#include <string>

#include "models/autoencoder_kl.h"
#include "models/autoencoder_tiny.h"
#include "visiongen/visiongen.h"

namespace vg {

struct SdModel;

class VaeChoice {
 public:
  // Loads what p.vae and p.preview/p.preview_vae name (cached by path).
  void prepare(const SdModel& m, const GenerateParams& p);
  // Pixels per latent of the decoding VAE.
  int scale(const SdModel& m) const;
  // A replacement AutoencoderKL for this request (null = the model's).
  std::unique_ptr<AutoencoderKL>& kl_override() { return kl_; }
  // TAESD as the final decoder: UNet-space latents -> NHWC image in [-1, 1].
  const AutoencoderTiny* tiny() const { return tiny_.get(); }
  // A picture of UNet-space latents for a progress callback.
  Image preview(const Tensor& latents, const SdModel& m) const;
  // TAESD preview of latents (2x2-averaged from 64x64 latents up) with `tiny`.
  static Image taesd_preview(const Tensor& latents, const AutoencoderTiny& tiny);
  std::string preview_method() const { return method_; }

 private:
  std::string vae_path_, preview_path_, method_ = "latent2rgb";
  std::unique_ptr<AutoencoderKL> kl_;
  std::unique_ptr<AutoencoderTiny> tiny_, preview_tiny_;
};

// Swaps a replacement KL VAE into the model for one request.
class VaeSwap {
 public:
  VaeSwap(std::unique_ptr<AutoencoderKL>& model_vae, std::unique_ptr<AutoencoderKL>& other);
  ~VaeSwap();
  VaeSwap(const VaeSwap&) = delete;
  VaeSwap& operator=(const VaeSwap&) = delete;

 private:
  std::unique_ptr<AutoencoderKL>& a_;
  std::unique_ptr<AutoencoderKL>& b_;
  bool swapped_;
};

}  // namespace vg
