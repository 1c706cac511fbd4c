// Helpers shared by the SD-family engines: pixels from decoded tensors, the
// working-memory check before a run, latent previews.
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "core/memory.h"
#include "pipelines/image_prep.h"
#include "pipelines/sd_engine.h"

namespace vg {

Image tensor_to_image(const Tensor& nhwc, int64_t index) {
  const int64_t h = nhwc.dim(1), w = nhwc.dim(2);
  Image img;
  img.width = static_cast<int>(w);
  img.height = static_cast<int>(h);
  img.pixels.resize(static_cast<size_t>(w * h * 3));
  const float* src = nhwc.data() + index * h * w * 3;
  for (int64_t i = 0; i < h * w * 3; ++i) {
    // diffusers: clamp(x/2+0.5, 0, 1) * 255, rounded half-to-even
    float v = std::clamp(src[i] / 2.0f + 0.5f, 0.0f, 1.0f);
    img.pixels[i] = static_cast<uint8_t>(std::nearbyint(v * 255.0f));
  }
  return img;
}

Status check_model_params(const SdModel& m, const GenerateParams& p, int w, int h) {
  const ClipTextModel& te = m.text_encoder ? *m.text_encoder : *m.text_encoder_2;
  const int mult = m.info.size_multiple;
  if (Status s = check_size_multiple(w, h, mult, "this model"); !s) return s;
  if (p.clip_skip > te.config().num_layers - (m.text_encoder_2 ? 1 : 0))
    return Error{ErrorCode::kInvalidArgument, "clip_skip " + std::to_string(p.clip_skip) +
                                                  " is larger than the text encoder's " +
                                                  std::to_string(te.config().num_layers) + " layers allow"};
  // Working memory before running, from the model's widths. Denoising and
  // decoding never overlap (the step pool is emptied in between), so the
  // need is the larger of the two. Factors measured on SD 1.5 (fp32, 512x512:
  // UNet ~0.46 GiB for the CFG pair, whole-image VAE decode ~0.6 GiB) plus
  // about 20 % headroom; bf16 keeps float32 between layers, so the same.
  const int64_t mult_l = m.info.vae_scale;
  const double rows = p.cfg_scale > 1.0f ? 2.0 : 1.0;
  const double c_unet = static_cast<double>(m.unet->config().block_out_channels.front());
  const double c_vae = static_cast<double>(m.vae->config().block_out_channels.front());
  auto need_for = [&](double ww, double hh) {
    const double px = ww * hh, latent_px = px / (mult_l * mult_l);
    const double unet = rows * latent_px * c_unet * 4 * 56;
    const bool tiled = p.vae_tiling == "on" || (p.vae_tiling == "auto" && latent_px > 96.0 * 96.0);
    const double vae_px = tiled ? std::min(px, 512.0 * 512.0) : px;  // one 512-pixel tile at a time
    const double vae = vae_px * c_vae * 4 * 6 + (tiled ? px * 3 * 4 * 3 : 0);  // + image, tile rows, blend
    return std::max(unet, vae);
  };
  const double need = need_for(w, h);
  const double avail = memory_budget_bytes();
  if (avail > 0 && need > avail) {
    int side = (std::min(w, h) / mult) * mult;
    while (side > mult && need_for(side, side) > avail) side -= mult;
    return Error{ErrorCode::kOutOfMemory, "a " + std::to_string(w) + "x" + std::to_string(h) + " image needs about " +
                                              format_gb(need) + " of working memory and " + format_gb(avail) +
                                              " are available; the largest square size that fits is " +
                                              std::to_string(side) + "x" + std::to_string(side) +
                                              (p.vae_tiling == "off" ? " (or use --vae-tiling auto)" : "")};
  }
  return Status();
}

// A cheap picture of UNet-space latents (no weights): a linear latent->RGB
// projection per family (the approximations A1111/ComfyUI use for SD1/2 and
// SDXL latents; grey mean for other channel counts), upsampled to pixels.
Image latents_preview(const Tensor& lat, int scale, const std::string& family) {
  static const float kSd[4][3] = {{0.3512f, 0.2297f, 0.3227f}, {0.3250f, 0.4974f, 0.2350f},
                                  {-0.2829f, 0.1762f, 0.2721f}, {-0.2120f, -0.2616f, -0.7177f}};
  static const float kXl[4][3] = {{0.3651f, 0.4232f, 0.4341f}, {-0.2533f, -0.0042f, 0.1068f},
                                  {0.1076f, 0.1111f, -0.0362f}, {-0.3165f, -0.2492f, -0.2188f}};
  static const float kXlBias[3] = {0.1084f, -0.0175f, -0.0011f};
  const bool xl = family == "sdxl";
  const auto& rgb = xl ? kXl : kSd;
  const int64_t h = lat.dim(1), w = lat.dim(2), c = lat.dim(3);
  Image img;
  img.width = static_cast<int>(w * scale);
  img.height = static_cast<int>(h * scale);
  img.pixels.resize(static_cast<size_t>(img.width) * img.height * 3);
  for (int y = 0; y < img.height; ++y)
    for (int x = 0; x < img.width; ++x) {
      const float* v = lat.data() + ((y / scale) * w + (x / scale)) * c;
      for (int k = 0; k < 3; ++k) {
        float acc = xl ? kXlBias[k] : 0.0f;
        for (int64_t ch = 0; ch < c; ++ch) acc += c == 4 ? v[ch] * rgb[ch][k] : v[ch] / static_cast<float>(c);
        img.pixels[(static_cast<size_t>(y) * img.width + x) * 3 + k] =
            static_cast<uint8_t>(std::clamp((acc + 1.0f) * 127.5f, 0.0f, 255.0f));
      }
    }
  return img;
}

}  // namespace vg
