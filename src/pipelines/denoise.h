// The sampling loop shared by every SD pipeline.
#pragma once
#include <functional>
#include <vector>

#include "models/unet.h"
#include "sampling/sampler.h"

namespace vg {

struct DenoiseHooks {
  // Called after each UNet call with (call index, total calls, latents); false cancels.
  std::function<bool(int, int, const Tensor&)> on_step;
  std::vector<Tensor>* step_latents = nullptr;  // NHWC latents after each call
  std::vector<Tensor>* unet_inputs = nullptr;   // NHWC UNet input per call
  // Inpainting UNets: NHWC [1,h,w,c] appended to the scaled latents' channels.
  const Tensor* extra_channels = nullptr;
  // Called after each sampler step with (call index, latents) to edit them
  // (latent-blend inpainting).
  std::function<void(size_t, Tensor&)> after_step;
  // SDXL's added conditioning, rows in UNet batch order ([uncond, cond] with CFG).
  const AddedCond* added = nullptr;
  // Stop before this call (diffusers' denoising_end); 0 = run every call.
  size_t end_call = 0;
};

// latents: NHWC [B,h,w,4] already multiplied by init_noise_sigma.
// cond: [B,T,C]; uncond: [B,T,C] or empty (no CFG). Returns final latents.
Tensor denoise(const UNet& unet, Sampler& sampler, const Tensor& cond, const Tensor& uncond,
               Tensor latents, float cfg_scale, Rng& rng,
               const DenoiseHooks& hooks = {}, size_t first_call = 0);

}  // namespace vg
