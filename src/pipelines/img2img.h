// Image-to-image and inpainting latents exactly as diffusers'
// StableDiffusionImg2ImgPipeline / StableDiffusionInpaintPipeline prepare
// and denoise them (same random draws in the same order), plus the
// A1111-style job around them: resizing, masks, "only masked", paste-back.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "pipelines/denoise.h"
#include "pipelines/sd_model.h"
#include "visiongen/visiongen.h"

namespace vg {

struct EditLatentsInput {
  Tensor image;             // NHWC [1,H,W,3] in [-1,1]
  std::vector<float> mask;  // H*W, 1 = repaint (binarized); empty = image-to-image
  double strength = 0.75;
  // Inpainting only: start from these latents * init_noise_sigma instead of
  // drawing noise (diffusers' `latents=` argument).
  const Tensor* initial_latents = nullptr;
  std::string vae_tiling = "auto";  // encode in tiles: auto | on | off
};

struct EditTrace {
  Tensor posterior_mean, posterior_std;  // VAE posterior of the init image (when encoded)
  std::vector<Tensor> unet_inputs, step_latents;
};

// The first model call for `strength`: diffusers' t_start * scheduler order.
// Throws invalid_argument when no step would run.
size_t first_call_for_strength(const Sampler& s, int steps, double strength);

// Final latents (NHWC, in UNet space) for an init image and optional mask.
// A 9-channel UNet gets mask + masked-image latents; a 4-channel one blends
// the noised original back outside the mask after every step.
Tensor edit_latents(const SdModel& m, Sampler& s, int steps, const Tensor& cond, const Tensor& uncond, float cfg,
                    Rng& rng, const EditLatentsInput& in, DenoiseHooks hooks, EditTrace* trace = nullptr);

// The whole job for one seed: fit the init image/mask to the generation
// size, run edit_latents, decode, paste back. `decode` turns latents into an
// RGB image. Returns the output image; appends notes to `warnings`.
struct EditJob {
  const Image* init = nullptr;
  const Image* mask = nullptr;  // may be null
  int width = 0, height = 0;    // generation size (multiple of the model factor)
  // UNet-space latents -> NHWC image in [-1,1] (e.g. TAESD); null = the model's VAE.
  std::function<Tensor(const Tensor&)> decode;
};
Image run_edit_job(const SdModel& m, const GenerateParams& p, const EditJob& job, Sampler& s, const Tensor& cond,
                   const Tensor& uncond, Rng& rng, DenoiseHooks hooks, std::vector<std::string>* warnings);

// Generation size for an init image: the request's size, else the image's
// rounded down to the model multiple. Fails for mode "none" when the image differs.
std::pair<int, int> edit_size(const GenerateParams& p, const Image& init, int multiple);

}  // namespace vg
