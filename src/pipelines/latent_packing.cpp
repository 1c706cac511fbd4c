#include "pipelines/latent_packing.h"

namespace vg {

Tensor pack_latents_2x2(const Tensor& x) {
  const int64_t b = x.dim(0), h = x.dim(1), w = x.dim(2), c = x.dim(3), hh = h / 2, ww = w / 2;
  Tensor out({b, hh * ww, c * 4});
  for (int64_t n = 0; n < b; ++n)
    for (int64_t r = 0; r < hh; ++r)
      for (int64_t col = 0; col < ww; ++col) {
        float* o = out.data() + ((n * hh + r) * ww + col) * c * 4;
        for (int64_t dy = 0; dy < 2; ++dy)
          for (int64_t dx = 0; dx < 2; ++dx) {
            const float* in = x.data() + ((n * h + 2 * r + dy) * w + 2 * col + dx) * c;
            for (int64_t k = 0; k < c; ++k) o[k * 4 + dy * 2 + dx] = in[k];
          }
      }
  return out;
}

Tensor unpack_latents_2x2(const Tensor& t, int64_t h, int64_t w) {
  const int64_t b = t.dim(0), c = t.dim(2) / 4, hh = h / 2, ww = w / 2;
  Tensor out({b, h, w, c});
  for (int64_t n = 0; n < b; ++n)
    for (int64_t r = 0; r < hh; ++r)
      for (int64_t col = 0; col < ww; ++col) {
        const float* in = t.data() + ((n * hh + r) * ww + col) * c * 4;
        for (int64_t dy = 0; dy < 2; ++dy)
          for (int64_t dx = 0; dx < 2; ++dx) {
            float* o = out.data() + ((n * h + 2 * r + dy) * w + 2 * col + dx) * c;
            for (int64_t k = 0; k < c; ++k) o[k] = in[k * 4 + dy * 2 + dx];
          }
      }
  return out;
}

Tensor packed_position_ids(int64_t h, int64_t w) {
  const int64_t hh = h / 2, ww = w / 2;
  Tensor ids = Tensor::zeros({hh * ww, 3});
  for (int64_t r = 0; r < hh; ++r)
    for (int64_t c = 0; c < ww; ++c) {
      ids.data()[(r * ww + c) * 3 + 1] = static_cast<float>(r);
      ids.data()[(r * ww + c) * 3 + 2] = static_cast<float>(c);
    }
  return ids;
}

namespace {

class PackedNoiseRng : public Rng {
 public:
  explicit PackedNoiseRng(std::unique_ptr<Rng> inner) : inner_(std::move(inner)) {}
  std::vector<float> randn(int64_t numel) override { return inner_->randn(numel); }
  Tensor randn_nhwc(const Shape& s) override {
    if (s.size() != 4 || s[1] % 2 || s[2] % 2) return Rng::randn_nhwc(s);
    return unpack_latents_2x2(inner_->randn_tensor({s[0], (s[1] / 2) * (s[2] / 2), 4 * s[3]}), s[1], s[2]);
  }

 private:
  std::unique_ptr<Rng> inner_;
};

}  // namespace

std::unique_ptr<Rng> packed_noise_rng(std::unique_ptr<Rng> inner) {
  return std::make_unique<PackedNoiseRng>(std::move(inner));
}

}  // namespace vg
