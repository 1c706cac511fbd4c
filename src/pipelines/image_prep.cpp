#include "pipelines/image_prep.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "io/image_decode.h"

namespace vg {

Status check_size_multiple(int w, int h, int mult, const std::string& who) {
  if (w % mult == 0 && h % mult == 0) return Status();
  return Error{ErrorCode::kInvalidArgument,
               "width and height must be multiples of " + std::to_string(mult) + " for " + who + " (got " +
                   std::to_string(w) + "x" + std::to_string(h) + "); try " +
                   std::to_string((w + mult - 1) / mult * mult) + "x" + std::to_string((h + mult - 1) / mult * mult)};
}

RequestImages::RequestImages(const GenerateParams& p, const ImageInputs& in) {
  pi = in.init_image;
  if (!pi && !p.init_image.empty()) {
    init = read_image_file(p.init_image);
    pi = &init;
  }
  pm = in.mask;
  if (!pm && !p.mask.empty()) {
    mask = read_image_file(p.mask);
    pm = &mask;
  }
  if (pm && !pi) fail(ErrorCode::kInvalidArgument, "a mask needs an init image");
  for (const Image* im : {pi, pm})
    if (im && (im->width <= 0 || im->height <= 0 ||
               im->pixels.size() != static_cast<size_t>(im->width) * im->height * im->channels))
      fail(ErrorCode::kInvalidArgument, "an input image's pixel buffer does not match its size");
}

namespace {

double lanczos3(double x) {
  if (x == 0) return 1;
  if (x <= -3 || x >= 3) return 0;
  const double px = M_PI * x;
  return 3 * std::sin(px) * std::sin(px / 3) / (px * px);
}

// One separable pass along rows (horizontal) of an interleaved image.
std::vector<uint8_t> resample_axis(const std::vector<uint8_t>& src, int in_w, int in_h, int ch, int out_len, bool horizontal) {
  const int in_len = horizontal ? in_w : in_h;
  const double scale = static_cast<double>(in_len) / out_len;
  const double fs = std::max(scale, 1.0);
  const double support = 3 * fs;
  const int out_w = horizontal ? out_len : in_w, out_h = horizontal ? in_h : out_len;
  std::vector<uint8_t> dst(static_cast<size_t>(out_w) * out_h * ch);
  std::vector<double> wts;
  for (int o = 0; o < out_len; ++o) {
    const double center = (o + 0.5) * scale;
    const int lo = std::max(static_cast<int>(center - support + 0.5), 0);
    const int hi = std::min(static_cast<int>(center + support + 0.5), in_len);
    wts.assign(hi - lo, 0);
    double sum = 0;
    for (int k = lo; k < hi; ++k) sum += wts[k - lo] = lanczos3((k - center + 0.5) / fs);
    for (auto& w : wts) w /= sum == 0 ? 1 : sum;
    const int across = horizontal ? in_h : in_w;
    for (int a = 0; a < across; ++a)
      for (int c = 0; c < ch; ++c) {
        double acc = 0;
        for (int k = lo; k < hi; ++k) {
          const size_t idx = horizontal ? (static_cast<size_t>(a) * in_w + k) : (static_cast<size_t>(k) * in_w + a);
          acc += wts[k - lo] * src[idx * ch + c];
        }
        const size_t oi = horizontal ? (static_cast<size_t>(a) * out_w + o) : (static_cast<size_t>(o) * out_w + a);
        dst[oi * ch + c] = static_cast<uint8_t>(std::clamp(std::lround(acc), 0L, 255L));
      }
  }
  return dst;
}

}  // namespace

Image resize_image(const Image& img, int w, int h) {
  if (w <= 0 || h <= 0) fail(ErrorCode::kInvalidArgument, "cannot resize an image to " + std::to_string(w) + "x" + std::to_string(h));
  if (w == img.width && h == img.height) return img;
  std::vector<uint8_t> px = img.pixels;
  int cw = img.width;
  if (w != img.width) {
    px = resample_axis(px, img.width, img.height, img.channels, w, true);
    cw = w;
  }
  if (h != img.height) px = resample_axis(px, cw, img.height, img.channels, h, false);
  Image out;
  out.width = w;
  out.height = h;
  out.channels = img.channels;
  out.pixels = std::move(px);
  return out;
}

Image crop_image(const Image& img, int x0, int y0, int x1, int y1) {
  Image out;
  out.width = x1 - x0;
  out.height = y1 - y0;
  out.channels = img.channels;
  out.pixels.resize(static_cast<size_t>(out.width) * out.height * img.channels);
  for (int y = 0; y < out.height; ++y)
    std::copy_n(&img.pixels[(static_cast<size_t>(y + y0) * img.width + x0) * img.channels],
                static_cast<size_t>(out.width) * img.channels, &out.pixels[static_cast<size_t>(y) * out.width * img.channels]);
  return out;
}

Image fit_image(const Image& img, int w, int h, const std::string& mode) {
  if (mode == "just_resize") return resize_image(img, w, h);
  const double ratio = static_cast<double>(w) / h, src_ratio = static_cast<double>(img.width) / img.height;
  if (mode == "crop_and_resize") {
    // scale to cover, then centre-crop
    const int sw = ratio > src_ratio ? w : static_cast<int>(std::lround(img.width * static_cast<double>(h) / img.height));
    const int sh = ratio > src_ratio ? static_cast<int>(std::lround(img.height * static_cast<double>(w) / img.width)) : h;
    Image r = resize_image(img, std::max(sw, w), std::max(sh, h));
    const int x0 = (r.width - w) / 2, y0 = (r.height - h) / 2;
    return crop_image(r, x0, y0, x0 + w, y0 + h);
  }
  if (mode == "resize_and_fill") {
    // scale to fit, centre, and fill the bars by stretching the edge pixels
    const int sw = ratio < src_ratio ? w : std::max(1, static_cast<int>(std::lround(img.width * static_cast<double>(h) / img.height)));
    const int sh = ratio < src_ratio ? std::max(1, static_cast<int>(std::lround(img.height * static_cast<double>(w) / img.width))) : h;
    Image r = resize_image(img, sw, sh);
    Image out;
    out.width = w;
    out.height = h;
    out.channels = img.channels;
    out.pixels.resize(static_cast<size_t>(w) * h * img.channels);
    const int x0 = (w - sw) / 2, y0 = (h - sh) / 2;
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x) {
        const int sx = std::clamp(x - x0, 0, sw - 1), sy = std::clamp(y - y0, 0, sh - 1);
        std::copy_n(&r.pixels[(static_cast<size_t>(sy) * sw + sx) * img.channels], img.channels,
                    &out.pixels[(static_cast<size_t>(y) * w + x) * img.channels]);
      }
    return out;
  }
  fail(ErrorCode::kInvalidArgument, "resize_mode '" + mode + "' is unknown; use just_resize, crop_and_resize, resize_and_fill or none");
}

Tensor image_to_tensor(const Image& img) {
  Tensor t({1, img.height, img.width, 3});
  const size_t n = static_cast<size_t>(img.width) * img.height;
  for (size_t i = 0; i < n; ++i)
    for (int c = 0; c < 3; ++c) {
      const float v = static_cast<float>(img.pixels[i * img.channels + c]) / 255.0f;
      t.data()[i * 3 + c] = 2.0f * v - 1.0f;
    }
  return t;
}

bool has_transparency(const Image& img) {
  if (img.channels != 4) return false;
  for (size_t i = 3; i < img.pixels.size(); i += 4)
    if (img.pixels[i] != 255) return true;
  return false;
}

std::vector<float> mask_from_image(const Image& m, bool from_alpha) {
  const size_t n = static_cast<size_t>(m.width) * m.height;
  std::vector<float> out(n);
  for (size_t i = 0; i < n; ++i) {
    const uint8_t* p = &m.pixels[i * m.channels];
    if (from_alpha && m.channels == 4) {
      out[i] = 1.0f - p[3] / 255.0f;
    } else {
      // PIL's RGB -> L: (R*19595 + G*38470 + B*7471 + 0x8000) >> 16
      const uint32_t l = m.channels >= 3 ? (p[0] * 19595u + p[1] * 38470u + p[2] * 7471u + 0x8000u) >> 16 : p[0];
      out[i] = static_cast<float>(l) / 255.0f;
    }
  }
  return out;
}

std::vector<float> blur_mask(const std::vector<float>& m, int w, int h, float sigma) {
  if (sigma <= 0) return m;
  const int r = std::max(1, static_cast<int>(std::ceil(3 * sigma)));
  std::vector<float> k(2 * r + 1);
  float sum = 0;
  for (int i = -r; i <= r; ++i) sum += k[i + r] = std::exp(-0.5f * i * i / (sigma * sigma));
  for (auto& v : k) v /= sum;
  std::vector<float> tmp(m.size()), out(m.size());
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      float acc = 0;
      for (int i = -r; i <= r; ++i) acc += k[i + r] * m[static_cast<size_t>(y) * w + std::clamp(x + i, 0, w - 1)];
      tmp[static_cast<size_t>(y) * w + x] = acc;
    }
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      float acc = 0;
      for (int i = -r; i <= r; ++i) acc += k[i + r] * tmp[static_cast<size_t>(std::clamp(y + i, 0, h - 1)) * w + x];
      out[static_cast<size_t>(y) * w + x] = acc;
    }
  return out;
}

Box mask_crop_box(const std::vector<float>& m, int w, int h, int padding, int tw, int th) {
  Box b{w, h, 0, 0};
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      if (m[static_cast<size_t>(y) * w + x] > 0.5f) {
        b.x0 = std::min(b.x0, x), b.y0 = std::min(b.y0, y);
        b.x1 = std::max(b.x1, x + 1), b.y1 = std::max(b.y1, y + 1);
      }
  if (b.x1 <= b.x0) return Box{0, 0, w, h};  // empty mask: whole image
  b = {std::max(b.x0 - padding, 0), std::max(b.y0 - padding, 0), std::min(b.x1 + padding, w), std::min(b.y1 + padding, h)};
  // widen the short side to the target aspect ratio, shifting inside the image
  const double ratio = static_cast<double>(tw) / th;
  auto grow = [](int& lo, int& hi, int want, int limit) {
    want = std::min(want, limit);
    int extra = want - (hi - lo);
    lo -= extra / 2;
    hi += extra - extra / 2;
    if (lo < 0) hi -= lo, lo = 0;
    if (hi > limit) lo -= hi - limit, hi = limit;
    lo = std::max(lo, 0);
  };
  if (b.width() < b.height() * ratio) grow(b.x0, b.x1, static_cast<int>(std::lround(b.height() * ratio)), w);
  else grow(b.y0, b.y1, static_cast<int>(std::lround(b.width() / ratio)), h);
  return b;
}

Image composite(const Image& original, const Image& generated, const std::vector<float>& alpha) {
  Image out = generated;
  const size_t n = static_cast<size_t>(out.width) * out.height;
  for (size_t i = 0; i < n; ++i) {
    const float a = std::clamp(alpha[i], 0.0f, 1.0f);
    for (int c = 0; c < 3; ++c) {
      const float o = original.pixels[i * original.channels + c], g = generated.pixels[i * generated.channels + c];
      out.pixels[i * out.channels + c] = static_cast<uint8_t>(std::lround(o + (g - o) * a));
    }
  }
  return out;
}

}  // namespace vg
