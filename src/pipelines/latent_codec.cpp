#include "pipelines/latent_codec.h"

#include "core/error.h"

namespace vg {

namespace {

class KlCodec : public LatentCodec {
 public:
  explicit KlCodec(std::unique_ptr<AutoencoderKL> vae) : vae_(std::move(vae)) {}
  int64_t scale() const override { return vae_->scale(); }
  int64_t channels() const override { return vae_->config().latent_channels; }
  bool has_encoder() const override { return vae_->has_encoder(); }

  Tensor encode(const Tensor& image, Rng& rng, const std::string& tiling) const override {
    const VaeConfig& vc = vae_->config();
    const Posterior post = vae_->encode_with(image, tiling);
    const Tensor eps = rng.randn_nhwc(post.mean.shape());
    Tensor x0(post.mean.shape());
    for (int64_t i = 0; i < x0.numel(); ++i)
      x0.data()[i] = (post.mean.data()[i] + post.std.data()[i] * eps.data()[i] - vc.shift_factor) * vc.scaling_factor;
    return x0;
  }

  Tensor decode(Tensor lat, const std::string& tiling) const override {
    const VaeConfig& vc = vae_->config();
    for (int64_t i = 0; i < lat.numel(); ++i) lat.data()[i] = lat.data()[i] / vc.scaling_factor + vc.shift_factor;
    return vae_->decode_with(lat, tiling);
  }

 private:
  std::unique_ptr<AutoencoderKL> vae_;
};

class WanCodec : public LatentCodec {
 public:
  explicit WanCodec(std::unique_ptr<WanVae> vae) : vae_(std::move(vae)) {
    const WanVaeConfig& c = vae_->config();
    if (static_cast<int64_t>(c.latents_mean.size()) != c.z_dim || static_cast<int64_t>(c.latents_std.size()) != c.z_dim)
      fail(ErrorCode::kCorruptFile, "the VAE config lists " + std::to_string(c.latents_mean.size()) + " latents_mean / " +
                                        std::to_string(c.latents_std.size()) + " latents_std values for " +
                                        std::to_string(c.z_dim) + " latent channels; re-download the vae config.json");
  }
  int64_t scale() const override { return vae_->config().spatial_scale(); }
  int64_t channels() const override { return vae_->config().z_dim; }
  bool has_encoder() const override { return vae_->has_encoder(); }

  Tensor encode(const Tensor& image, Rng& rng, const std::string& tiling) const override {
    (void)tiling;  // single frames are encoded whole
    const WanVaeConfig& c = vae_->config();
    const Posterior post = vae_->encode(image);
    const Tensor eps = rng.randn_nhwc(post.mean.shape());
    Tensor x0(post.mean.shape());
    const int64_t ch = c.z_dim;
    for (int64_t i = 0; i < x0.numel(); ++i) {
      const int64_t k = i % ch;
      x0.data()[i] = (post.mean.data()[i] + post.std.data()[i] * eps.data()[i] - c.latents_mean[k]) / c.latents_std[k];
    }
    return x0;
  }

  Tensor decode(Tensor lat, const std::string& tiling) const override {
    (void)tiling;
    const WanVaeConfig& c = vae_->config();
    const int64_t ch = c.z_dim;
    for (int64_t i = 0; i < lat.numel(); ++i) {
      const int64_t k = i % ch;
      lat.data()[i] = lat.data()[i] * c.latents_std[k] + c.latents_mean[k];
    }
    return vae_->decode(lat);
  }

 private:
  std::unique_ptr<WanVae> vae_;
};

}  // namespace

std::unique_ptr<LatentCodec> kl_latent_codec(std::unique_ptr<AutoencoderKL> vae) {
  return std::make_unique<KlCodec>(std::move(vae));
}

std::unique_ptr<LatentCodec> wan_latent_codec(std::unique_ptr<WanVae> vae) {
  return std::make_unique<WanCodec>(std::move(vae));
}

}  // namespace vg
