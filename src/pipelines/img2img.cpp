#include "pipelines/img2img.h"

#include <algorithm>
#include <cmath>

#include "backend/cpu/ops.h"
#include "core/error.h"
#include "pipelines/image_prep.h"

namespace vg {

namespace {

// posterior sample (mean + std * eps, eps drawn from rng) * scaling factor
// trace: where to record the posterior (the init image's only).
Tensor encode_sample(const SdModel& m, const Tensor& image, Rng& rng, EditTrace* trace, const std::string& tiling) {
  Posterior post = m.vae->encode_with(image, tiling);
  if (trace) trace->posterior_mean = post.mean, trace->posterior_std = post.std;
  Tensor eps = rng.randn_nhwc(post.mean.shape());
  const float sf = m.vae->config().scaling_factor;
  Tensor z(post.mean.shape());
  for (int64_t k = 0; k < z.numel(); ++k) z.data()[k] = (post.mean.data()[k] + post.std.data()[k] * eps.data()[k]) * sf;
  return z;
}

// torch.nn.functional.interpolate(mode="nearest") of an H*W mask to h*w.
Tensor nearest_mask(const std::vector<float>& mask, int64_t H, int64_t W, int64_t h, int64_t w) {
  Tensor t({1, h, w, 1});
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x) {
      const int64_t sy = std::min(H - 1, static_cast<int64_t>(std::floor(y * (static_cast<double>(H) / h))));
      const int64_t sx = std::min(W - 1, static_cast<int64_t>(std::floor(x * (static_cast<double>(W) / w))));
      t.data()[y * w + x] = mask[static_cast<size_t>(sy * W + sx)];
    }
  return t;
}

}  // namespace

size_t first_call_for_strength(const Sampler& s, int steps, double strength) {
  const int init_timestep = std::min(static_cast<int>(steps * strength), steps);
  const int t_start = std::max(steps - init_timestep, 0);
  const size_t first = static_cast<size_t>(t_start) * static_cast<size_t>(s.order());
  if (init_timestep == 0 || first >= s.timesteps().size())
    fail(ErrorCode::kInvalidArgument, "strength " + std::to_string(strength) + " with " + std::to_string(steps) +
                                          " steps runs no denoising step; raise strength or steps");
  return first;
}

Tensor edit_latents(const SdModel& m, Sampler& s, int steps, const Tensor& cond, const Tensor& uncond, float cfg,
                    Rng& rng, const EditLatentsInput& in, DenoiseHooks hooks, EditTrace* trace) {
  const size_t first = first_call_for_strength(s, steps, in.strength);
  const int64_t H = in.image.dim(1), W = in.image.dim(2);
  const int64_t h = H / m.info.vae_scale, w = W / m.info.vae_scale, lc = m.vae->config().latent_channels;
  const bool inpaint = !in.mask.empty();
  const bool nine = inpaint && m.unet->config().in_channels == lc * 2 + 1;
  const bool strength_max = in.strength == 1.0;
  if (trace) {
    hooks.unet_inputs = &trace->unet_inputs;
    hooks.step_latents = &trace->step_latents;
  }
  // Draw order follows diffusers: init image posterior, noise, masked image posterior.
  const bool given = inpaint && in.initial_latents;
  Tensor image_latents;
  if (!inpaint || !nine || (!given && !strength_max)) image_latents = encode_sample(m, in.image, rng, trace, in.vae_tiling);
  Tensor noise = given ? in.initial_latents->clone() : rng.randn_nhwc({1, h, w, lc});
  Tensor latents;
  if (inpaint && (strength_max || given)) {
    latents = noise.clone();
    scale_inplace(latents, s.init_noise_sigma());
  } else {
    latents = s.add_noise(image_latents, noise, first);
  }
  // diffusers' init latents are channels-last (see TorchChannelsLastGroupNorm);
  // they stay so unless the UNet input is a channel concat (9-channel models)
  // or the start is pure noise.
  TorchChannelsLastGroupNorm cl(!nine && !(inpaint && (strength_max || given)));
  if (!inpaint) return denoise(*m.unet, s, cond, uncond, latents, cfg, rng, hooks, first);

  Tensor mask_lat = nearest_mask(in.mask, H, W, h, w);
  Tensor masked = in.image.clone();
  for (int64_t i = 0; i < H * W; ++i)
    for (int c = 0; c < 3; ++c) masked.data()[i * 3 + c] *= in.mask[static_cast<size_t>(i)] < 0.5f ? 1.0f : 0.0f;
  Tensor extra;
  if (nine) {
    extra = concat_channels(mask_lat, encode_sample(m, masked, rng, nullptr, in.vae_tiling));
    hooks.extra_channels = &extra;
  } else {
    if (m.unet->config().in_channels != lc)
      fail(ErrorCode::kUnsupportedModel, "this UNet takes " + std::to_string(m.unet->config().in_channels) +
                                             " input channels; inpainting supports 4 (latent blend) or 9 (inpainting models)");
    rng.randn_nhwc({1, h, w, lc});  // diffusers encodes the masked image here too; keep the generator in step
    const size_t n_calls = s.timesteps().size();
    hooks.after_step = [&, n_calls](size_t i, Tensor& lat) {
      // diffusers' 4-channel path: noised original outside the mask
      Tensor proper = i + 1 < n_calls ? s.add_noise(image_latents, noise, i + 1) : image_latents;
      for (int64_t p = 0; p < h * w; ++p) {
        const float mk = mask_lat.data()[p];
        for (int64_t c = 0; c < lc; ++c) {
          float& v = lat.data()[p * lc + c];
          v = (1 - mk) * proper.data()[p * lc + c] + mk * v;
        }
      }
    };
  }
  return denoise(*m.unet, s, cond, uncond, latents, cfg, rng, hooks, first);
}

std::pair<int, int> edit_size(const GenerateParams& p, const Image& init, int mult) {
  int w = p.width, h = p.height;
  if (!w && !h) {
    w = init.width / mult * mult;
    h = init.height / mult * mult;
    if (w == 0 || h == 0)
      fail(ErrorCode::kInvalidArgument, "the init image (" + std::to_string(init.width) + "x" + std::to_string(init.height) +
                                            ") is smaller than the model's " + std::to_string(mult) + "-pixel multiple");
  } else if (!w) {
    w = static_cast<int>(std::lround(static_cast<double>(h) * init.width / init.height / mult)) * mult;
  } else if (!h) {
    h = static_cast<int>(std::lround(static_cast<double>(w) * init.height / init.width / mult)) * mult;
  }
  if (p.resize_mode == "none" && (w != init.width || h != init.height))
    fail(ErrorCode::kInvalidArgument, "the init image is " + std::to_string(init.width) + "x" + std::to_string(init.height) +
                                          " but " + std::to_string(w) + "x" + std::to_string(h) +
                                          " is needed (multiples of " + std::to_string(mult) +
                                          "); resize it or pass --resize-mode just_resize|crop_and_resize|resize_and_fill");
  return {std::max(w, mult), std::max(h, mult)};
}

namespace {

Image mask_to_gray(const std::vector<float>& m, int w, int h) {
  Image g;
  g.width = w;
  g.height = h;
  g.channels = 1;
  g.pixels.resize(m.size());
  for (size_t i = 0; i < m.size(); ++i) g.pixels[i] = static_cast<uint8_t>(std::lround(std::clamp(m[i], 0.0f, 1.0f) * 255));
  return g;
}

std::vector<float> gray_to_mask(const Image& g) {
  std::vector<float> m(g.pixels.size());
  for (size_t i = 0; i < m.size(); ++i) m[i] = g.pixels[i] / 255.0f;
  return m;
}

std::vector<float> binarize(const std::vector<float>& m) {
  std::vector<float> b(m.size());
  for (size_t i = 0; i < m.size(); ++i) b[i] = m[i] >= 0.5f ? 1.0f : 0.0f;
  return b;
}

}  // namespace

Image run_edit_job(const SdModel& m, const GenerateParams& p, const EditJob& job, Sampler& s, const Tensor& cond,
                   const Tensor& uncond, Rng& rng, DenoiseHooks hooks, std::vector<std::string>* warnings) {
  const Image& init = *job.init;
  const int W = job.width, H = job.height;
  std::vector<float> mask;  // at init size, 1 = repaint, not yet binarized
  if (job.mask) {
    const Image& mk = *job.mask;
    if (mk.width != init.width || mk.height != init.height)
      fail(ErrorCode::kInvalidArgument, "the mask is " + std::to_string(mk.width) + "x" + std::to_string(mk.height) +
                                            " but the init image is " + std::to_string(init.width) + "x" +
                                            std::to_string(init.height) + "; give both the same size");
    const bool alpha = has_transparency(mk);
    if (alpha && warnings)
      warnings->push_back("the mask has transparency: transparent pixels are repainted (OpenAI edits convention)");
    mask = mask_from_image(mk, alpha);
    if (p.invert_mask)
      for (auto& v : mask) v = 1 - v;
  }
  const double strength = std::round(static_cast<double>(p.strength) * 1e6) / 1e6;
  const bool nine = job.mask && m.unet->config().in_channels == 2 * m.vae->config().latent_channels + 1;
  const bool paste = job.mask && (p.paste_back == "on" || (p.paste_back == "auto" && (!nine || p.inpaint_full_res)));

  // The region worked on: the whole image, or the crop around the mask.
  Box box{0, 0, init.width, init.height};
  Image work;
  std::vector<float> work_mask;
  if (job.mask && p.inpaint_full_res) {
    box = mask_crop_box(binarize(mask), init.width, init.height, p.inpaint_full_res_padding, W, H);
    work = resize_image(crop_image(init, box.x0, box.y0, box.x1, box.y1), W, H);
    work_mask = gray_to_mask(resize_image(crop_image(mask_to_gray(mask, init.width, init.height), box.x0, box.y0, box.x1, box.y1), W, H));
  } else {
    const bool same = init.width == W && init.height == H;
    work = same ? init : fit_image(init, W, H, p.resize_mode == "none" ? "just_resize" : p.resize_mode);
    if (job.mask)
      work_mask = same ? mask : gray_to_mask(fit_image(mask_to_gray(mask, init.width, init.height), W, H,
                                                       p.resize_mode == "none" ? "just_resize" : p.resize_mode));
  }
  EditLatentsInput in{image_to_tensor(work), {}, strength};
  in.vae_tiling = p.vae_tiling;
  std::vector<float> alpha;
  if (job.mask) {
    const std::vector<float> hard = binarize(work_mask);
    const std::vector<float> soft = blur_mask(hard, W, H, p.mask_blur);
    in.mask = p.mask_blur > 0 ? binarize(soft) : hard;
    alpha.resize(hard.size());
    for (size_t i = 0; i < hard.size(); ++i) alpha[i] = std::min(hard[i], soft[i]);  // feather inward only
  }
  const bool traced = hooks.step_latents != nullptr;
  Tensor lat = edit_latents(m, s, p.steps, cond, uncond, p.cfg_scale, rng, in, hooks);
  if (traced) lat = lat.clone();  // the trace shares the buffer scaled in place below
  tensor_pool_trim();  // the UNet's cached buffers are not what the VAE needs
  Tensor img;
  if (job.decode) {
    img = job.decode(lat);
  } else {
    scale_inplace(lat, 1.0f / m.vae->config().scaling_factor);
    img = m.vae->decode_with(lat, p.vae_tiling);
  }
  Image out;
  out.width = W;
  out.height = H;
  out.pixels.resize(static_cast<size_t>(W) * H * 3);
  for (size_t i = 0; i < out.pixels.size(); ++i)
    out.pixels[i] = static_cast<uint8_t>(std::nearbyint(std::clamp(img.data()[i] / 2.0f + 0.5f, 0.0f, 1.0f) * 255.0f));
  if (!job.mask || !paste) return out;
  if (!p.inpaint_full_res) return composite(work, out, alpha);
  // paste the crop back into the full-size original
  Image patch = resize_image(out, box.width(), box.height());
  Image a_img = resize_image(mask_to_gray(alpha, W, H), box.width(), box.height());
  std::vector<float> hard_full = binarize(mask);
  Image full;
  full.width = init.width;
  full.height = init.height;
  full.pixels.resize(static_cast<size_t>(init.width) * init.height * 3);
  for (size_t i = 0; i < static_cast<size_t>(init.width) * init.height; ++i)
    for (int c = 0; c < 3; ++c) full.pixels[i * 3 + c] = init.pixels[i * init.channels + c];
  for (int y = 0; y < box.height(); ++y)
    for (int x = 0; x < box.width(); ++x) {
      const size_t fi = static_cast<size_t>(y + box.y0) * init.width + (x + box.x0);
      const size_t pi = static_cast<size_t>(y) * box.width() + x;
      const float a = std::min(a_img.pixels[pi] / 255.0f, hard_full[fi]);
      for (int c = 0; c < 3; ++c) {
        const float o = full.pixels[fi * 3 + c], g = patch.pixels[pi * 3 + c];
        full.pixels[fi * 3 + c] = static_cast<uint8_t>(std::lround(o + (g - o) * a));
      }
    }
  return full;
}

}  // namespace vg
