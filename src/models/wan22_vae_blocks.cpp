#include "models/wan22_vae_blocks.h"

#include <algorithm>

#include "backend/cpu/ops.h"
#include "core/error.h"

namespace vg::wan {

Tensor patchify(const Tensor& x, int64_t p) {
  const int64_t t = x.dim(0), h = x.dim(1), w = x.dim(2), c = x.dim(3);
  if (h % p != 0 || w % p != 0) fail(ErrorCode::kInternal, "patchify: size not a multiple of the patch");
  const int64_t ho = h / p, wo = w / p, co = c * p * p;
  Tensor out({t, ho, wo, co});
  const float* xd = x.data();
  float* od = out.data();
#pragma omp parallel for collapse(2)
  for (int64_t f = 0; f < t; ++f)
    for (int64_t y = 0; y < ho; ++y)
      for (int64_t xo = 0; xo < wo; ++xo)
        for (int64_t ci = 0; ci < c; ++ci)
          for (int64_t px = 0; px < p; ++px)
            for (int64_t py = 0; py < p; ++py)
              od[((f * ho + y) * wo + xo) * co + (ci * p + px) * p + py] =
                  xd[((f * h + y * p + py) * w + xo * p + px) * c + ci];
  return out;
}

Tensor unpatchify(const Tensor& x, int64_t p) {
  const int64_t t = x.dim(0), h = x.dim(1), w = x.dim(2), ci_all = x.dim(3), c = ci_all / (p * p);
  if (c * p * p != ci_all) fail(ErrorCode::kInternal, "unpatchify: channels not a multiple of patch^2");
  const int64_t ho = h * p, wo = w * p;
  Tensor out({t, ho, wo, c});
  const float* xd = x.data();
  float* od = out.data();
#pragma omp parallel for collapse(2)
  for (int64_t f = 0; f < t; ++f)
    for (int64_t y = 0; y < h; ++y)
      for (int64_t xi = 0; xi < w; ++xi)
        for (int64_t ci = 0; ci < c; ++ci)
          for (int64_t px = 0; px < p; ++px)
            for (int64_t py = 0; py < p; ++py)
              od[((f * ho + y * p + py) * wo + xi * p + px) * c + ci] =
                  xd[((f * h + y) * w + xi) * ci_all + (ci * p + px) * p + py];
  return out;
}

Tensor avg_down(const Tensor& x, int64_t out, int64_t ft, int64_t fs) {
  const int64_t t = x.dim(0), h = x.dim(1), w = x.dim(2), c = x.dim(3);
  const int64_t factor = ft * fs * fs, group = c * factor / out;
  if (h % fs != 0 || w % fs != 0 || group * out != c * factor)
    fail(ErrorCode::kInternal, "avg_down: sizes do not divide");
  const int64_t pad = (ft - t % ft) % ft, to = (t + pad) / ft, ho = h / fs, wo = w / fs;
  Tensor o({to, ho, wo, out});
  const float* xd = x.data();
  float* od = o.data();
  const float inv = 1.0f / static_cast<float>(group);
#pragma omp parallel for collapse(2)
  for (int64_t f = 0; f < to; ++f)
    for (int64_t y = 0; y < ho; ++y)
      for (int64_t xo = 0; xo < wo; ++xo)
        for (int64_t oc = 0; oc < out; ++oc) {
          float sum = 0.0f;
          for (int64_t g = 0; g < group; ++g) {
            // folded channel ((c * ft + dt) * fs + dy) * fs + dx
            const int64_t k = oc * group + g, dx = k % fs, dy = (k / fs) % fs, dt = (k / (fs * fs)) % ft,
                          ci = k / factor, src_t = f * ft + dt - pad;
            if (src_t >= 0) sum += xd[((src_t * h + y * fs + dy) * w + xo * fs + dx) * c + ci];
          }
          od[((f * ho + y) * wo + xo) * out + oc] = sum * inv;
        }
  return o;
}

Tensor dup_up(const Tensor& x, int64_t out, int64_t ft, int64_t fs, bool first_chunk) {
  const int64_t t = x.dim(0), h = x.dim(1), w = x.dim(2), c = x.dim(3);
  const int64_t factor = ft * fs * fs, repeats = out * factor / c;
  if (repeats * c != out * factor) fail(ErrorCode::kInternal, "dup_up: sizes do not divide");
  const int64_t drop = first_chunk ? ft - 1 : 0, to = t * ft - drop, ho = h * fs, wo = w * fs;
  Tensor o({to, ho, wo, out});
  const float* xd = x.data();
  float* od = o.data();
#pragma omp parallel for collapse(2)
  for (int64_t f = 0; f < to; ++f)
    for (int64_t y = 0; y < ho; ++y)
      for (int64_t xo = 0; xo < wo; ++xo) {
        const int64_t tf = f + drop, dt = tf % ft, dy = y % fs, dx = xo % fs;
        const float* src = xd + ((tf / ft * h + y / fs) * w + xo / fs) * c;
        float* dst = od + ((f * ho + y) * wo + xo) * out;
        for (int64_t oc = 0; oc < out; ++oc) dst[oc] = src[(((oc * ft + dt) * fs + dy) * fs + dx) / repeats];
      }
  return o;
}

ResidualDownBlock::ResidualDownBlock(const WeightStore& w, const std::string& p, int64_t in, int64_t out,
                                     int64_t num_res, bool down_t, bool down_s, int& slot)
    : out_(out), ft_(down_t ? 2 : 1), fs_(down_s ? 2 : 1) {
  for (int64_t r = 0; r < num_res; ++r)
    resnets_.emplace_back(w, p + "resnets." + std::to_string(r) + ".", r == 0 ? in : out, out, slot);
  if (down_s)
    downsampler_.emplace_back(w, p + "downsampler.", out,
                              down_t ? ResampleMode::kDown3d : ResampleMode::kDown2d, slot);
}

Tensor ResidualDownBlock::forward(const Tensor& x, Pass& pass) const {
  Tensor h = x;
  for (const ResidualBlock& r : resnets_) h = r.forward(h, pass);
  if (!downsampler_.empty()) h = downsampler_[0].forward(h, pass);
  add_inplace(h, avg_down(x, out_, ft_, fs_));
  return h;
}

ResidualUpBlock::ResidualUpBlock(const WeightStore& w, const std::string& p, int64_t in, int64_t out,
                                 int64_t num_res, bool up_t, bool up_s, int& slot)
    : out_(out), ft_(up_t ? 2 : 1), fs_(up_s ? 2 : 1) {
  for (int64_t r = 0; r <= num_res; ++r)
    resnets_.emplace_back(w, p + "resnets." + std::to_string(r) + ".", r == 0 ? in : out, out, slot);
  if (up_s)
    upsampler_.emplace_back(w, p + "upsampler.", out, up_t ? ResampleMode::kUp3d : ResampleMode::kUp2d, slot,
                            out);
}

Tensor ResidualUpBlock::forward(const Tensor& x, Pass& pass) const {
  Tensor h = x;
  for (const ResidualBlock& r : resnets_) h = r.forward(h, pass);
  if (upsampler_.empty()) return h;
  h = upsampler_[0].forward(h, pass);
  add_inplace(h, dup_up(x, out_, ft_, fs_, pass.first));
  return h;
}

MidBlock::MidBlock(const WeightStore& w, const std::string& p, int64_t dim, int& slot)
    : attn_(w, p + "attentions.0.", dim) {
  res_.emplace_back(w, p + "resnets.0.", dim, dim, slot);
  res_.emplace_back(w, p + "resnets.1.", dim, dim, slot);
}

Tensor MidBlock::forward(const Tensor& x, Pass& pass) const {
  Tensor h = res_[0].forward(x, pass);
  h = attn_.forward(h);
  return res_[1].forward(h, pass);
}

}  // namespace vg::wan
