#include "pipelines/denoise.h"

#include <algorithm>

#include "backend/cpu/ops.h"
#include "core/error.h"

namespace vg {

Tensor denoise(const UNet& unet, Sampler& sampler, const Tensor& cond, const Tensor& uncond,
               Tensor latents, float cfg_scale, Rng& rng, const DenoiseHooks& hooks,
               size_t first_call) {
  const bool cfg = !uncond.empty();
  const Tensor context = cfg ? concat_batch(uncond, cond) : cond;
  const auto& ts = sampler.timesteps();
  Tensor extra;
  if (hooks.extra_channels) {
    extra = *hooks.extra_channels;
    for (int64_t b = 1; b < latents.dim(0); ++b) extra = concat_batch(extra, *hooks.extra_channels);
  }
  // diffusers' denoising_end stops before end_call; 0 runs to the end
  const size_t end = hooks.end_call ? std::min(hooks.end_call, ts.size()) : ts.size();
  const AddedCond added = hooks.added ? *hooks.added : AddedCond{};
  const int total = static_cast<int>(end - first_call);
  for (size_t i = first_call; i < end; ++i) {
    Tensor x = sampler.scale_model_input(latents, i);
    if (!extra.empty()) x = concat_channels(x, extra);
    Tensor in = cfg ? concat_batch(x, x) : x;
    if (hooks.unet_inputs) hooks.unet_inputs->push_back(in);
    Tensor out = unet.forward(in, {ts[i]}, context, added);
    Tensor guided;
    if (cfg) {
      // eps = uncond + g * (cond - uncond), batch order [uncond, cond]
      const int64_t n = latents.numel();
      guided = Tensor(latents.shape());
      const float* u = out.data();
      const float* c = out.data() + n;
      float* g = guided.data();
      for (int64_t k = 0; k < n; ++k) g[k] = u[k] + cfg_scale * (c[k] - u[k]);
    } else {
      guided = out;
    }
    latents = sampler.step(guided, i, latents, rng);
    if (hooks.after_step) hooks.after_step(i, latents);
    if (hooks.step_latents) hooks.step_latents->push_back(latents);
    if (hooks.on_step && !hooks.on_step(static_cast<int>(i - first_call + 1), total, latents))
      fail(ErrorCode::kCancelled, "generation was cancelled");
  }
  return latents;
}

}  // namespace vg
