// Spatially tiled Wan VAE decode, as diffusers' AutoencoderKLWan.tiled_decode:
// overlapping tiles, each decoded over all frames with its own time caches,
// cross-faded with the tile above and the tile to the left, then cut to the
// stride. Blending happens in the decoder's (patchified) output space, with
// extents and strides divided by patch_size, as diffusers does.
#include <algorithm>

#include "core/error.h"
#include "models/wan22_vae_blocks.h"
#include "models/wan_vae.h"
#include "models/wan_vae_blocks.h"

namespace vg {

namespace wan {

void blend_tiles(const Tensor& a, Tensor& b, int axis, int64_t extent) {
  extent = std::min({a.dim(axis), b.dim(axis), extent});
  if (extent <= 0) return;
  const int64_t n = b.dim(0), h = b.dim(1), w = b.dim(2), c = b.dim(3);
  const int64_t ah = a.dim(1), aw = a.dim(2);
  const int64_t rows = axis == 1 ? extent : h;  // the rows of b that change
#pragma omp parallel for collapse(2)
  for (int64_t t = 0; t < n; ++t)
    for (int64_t y = 0; y < rows; ++y) {
      const int64_t ay = axis == 1 ? ah - extent + y : y;
      const int64_t cols = axis == 2 ? extent : w;
      for (int64_t x = 0; x < cols; ++x) {
        const int64_t ax = axis == 2 ? aw - extent + x : x;
        if (ay >= ah || ax >= aw) continue;  // a smaller across the seam: nothing to blend
        const float wb = static_cast<float>(axis == 1 ? y : x) / static_cast<float>(extent);
        float* pb = b.data() + ((t * h + y) * w + x) * c;
        const float* pa = a.data() + ((t * ah + ay) * aw + ax) * c;
        for (int64_t k = 0; k < c; ++k) pb[k] = pa[k] * (1.0f - wb) + pb[k] * wb;
      }
    }
}

}  // namespace wan

namespace {

// z[:, y0:y0+h, x0:x0+w, :] (clipped at the edges), a copy
Tensor crop_region(const Tensor& z, int64_t y0, int64_t x0, int64_t h, int64_t w) {
  h = std::min(h, z.dim(1) - y0);
  w = std::min(w, z.dim(2) - x0);
  const int64_t n = z.dim(0), c = z.dim(3);
  Tensor o({n, h, w, c});
  for (int64_t t = 0; t < n; ++t)
    for (int64_t y = 0; y < h; ++y)
      std::copy_n(z.data() + ((t * z.dim(1) + y0 + y) * z.dim(2) + x0) * c, w * c, o.data() + (t * h + y) * w * c);
  return o;
}

}  // namespace

bool wan_vae_tiling_wanted(const std::string& mode, int64_t width, int64_t height) {
  if (mode == "on") return true;
  if (mode == "off") return false;
  if (mode == "auto") return width * height > int64_t{512} * 512;
  fail(ErrorCode::kInvalidArgument, "vae_tiling must be auto, on or off, got '" + mode + "'");
}

void check_wan_tiling(const WanTiling& t, int64_t s) {
  if (t.tile < s || t.stride < s || t.stride > t.tile || t.tile % s != 0 || t.stride % s != 0)
    fail(ErrorCode::kInvalidArgument, "Wan VAE tiles need tile >= stride > 0, both multiples of " +
                                          std::to_string(s) + " pixels, got tile " + std::to_string(t.tile) +
                                          " stride " + std::to_string(t.stride));
}

Tensor WanVae::decode_tiled(const Tensor& z, const WanTiling& tiling) const {
  const int64_t s = cfg_.spatial_scale(), p = cfg_.patch_size;
  const int64_t tile = tiling.tile / s, stride = tiling.stride / s;  // latents
  const int64_t per = s / p;                                         // output pixels per latent
  const int64_t extent = (tiling.tile - tiling.stride) / p, keep = tiling.stride / p;
  const int64_t lh = z.dim(1), lw = z.dim(2);
  Tensor out;
  std::vector<Tensor> above;  // the previous row of tiles, blended (only it is needed)
  for (int64_t i = 0; i < lh; i += stride) {
    std::vector<Tensor> row;
    for (int64_t j = 0; j < lw; j += stride) {
      Tensor t = decode_patchified(crop_region(z, i, j, tile, tile));
      if (!above.empty()) wan::blend_tiles(above[row.size()], t, 1, extent);
      if (!row.empty()) wan::blend_tiles(row.back(), t, 2, extent);
      if (out.numel() == 0) out = Tensor({t.dim(0), lh * per, lw * per, t.dim(3)});
      // keep the first `keep` rows and columns at the tile's place
      const int64_t y0 = i * per, x0 = j * per, c = t.dim(3), oh = out.dim(1), ow = out.dim(2);
      const int64_t h = std::min({keep, t.dim(1), oh - y0}), w = std::min({keep, t.dim(2), ow - x0});
      for (int64_t f = 0; f < t.dim(0); ++f)
        for (int64_t y = 0; y < h; ++y)
          std::copy_n(t.data() + ((f * t.dim(1) + y) * t.dim(2)) * c, w * c,
                      out.data() + ((f * oh + y0 + y) * ow + x0) * c);
      row.push_back(std::move(t));
    }
    above = std::move(row);
  }
  return out;
}

}  // namespace vg
