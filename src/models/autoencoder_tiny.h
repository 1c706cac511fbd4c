// AutoencoderTiny (TAESD / TAESDXL, madebyollin): a small conv-only VAE
// (ReLU blocks, no norms, no attention) built from diffusers' config.json.
// Also reads the original single files (taesd_decoder.safetensors, ...).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "backend/cpu/layers.h"
#include "io/weights.h"

namespace vg {

struct TinyVaeConfig {
  int64_t in_channels = 3, out_channels = 3, latent_channels = 4;
  std::vector<int64_t> encoder_block_out_channels{64, 64, 64, 64};
  std::vector<int64_t> decoder_block_out_channels{64, 64, 64, 64};
  std::vector<int64_t> num_encoder_blocks{1, 3, 3, 3};
  std::vector<int64_t> num_decoder_blocks{3, 3, 3, 1};
  std::string act_fn = "relu";
  int64_t upsampling_scaling_factor = 2;
  float latent_magnitude = 3.0f, latent_shift = 0.5f;
  float scaling_factor = 1.0f, shift_factor = 0.0f;
  static TinyVaeConfig from_json_file(const std::string& path);
};

class AutoencoderTiny {
 public:
  // Builds the parts whose weights are present (encoder.layers.* /
  // decoder.layers.*); at least one must be.
  AutoencoderTiny(const TinyVaeConfig& cfg, const WeightStore& w);
  // A diffusers folder (config.json + diffusion_pytorch_model.safetensors) or
  // a folder with madebyollin's <name>_decoder/_encoder.safetensors (either
  // may be absent; the structure is then read from the weights).
  static std::unique_ptr<AutoencoderTiny> load_folder(const std::string& dir);
  // config.json says _class_name "AutoencoderTiny".
  static bool is_tiny_vae_folder(const std::string& dir);

  // Raw latents NHWC [B,h,w,latent] (no scaling needed: scaling_factor is 1
  // for every TAESD) -> image NHWC [B,H,W,out] in about [-1,1].
  Tensor decode(const Tensor& latents) const;
  // Image NHWC in [-1,1] -> raw latents (no scaling, no clamp).
  Tensor encode(const Tensor& image) const;
  // The decoder's input soft clamp: tanh(z/3)*3.
  static Tensor clamp_latents(const Tensor& z);
  // Latents <-> [0,1] for storing them as images (not used by pipelines).
  Tensor scale_latents(const Tensor& z) const;
  Tensor unscale_latents(const Tensor& s) const;

  bool has_encoder() const { return !enc_.empty(); }
  bool has_decoder() const { return !dec_.empty(); }
  const TinyVaeConfig& config() const { return cfg_; }
  int64_t scale() const;  // pixels per latent
  float scaling_factor() const { return cfg_.scaling_factor; }
  int64_t latent_channels() const { return cfg_.latent_channels; }

 private:
  // One entry of diffusers' nn.Sequential `layers`.
  struct Layer {
    enum Kind { kConv, kAct, kBlock, kUpsample } kind;
    Conv2d conv;        // kConv
    Conv2d c0, c1, c2;  // kBlock: act(c2(act(c1(act(c0 x)))) + x)
  };
  Tensor run(const std::vector<Layer>& layers, Tensor x) const;
  void act_inplace(Tensor& x) const;

  TinyVaeConfig cfg_;
  bool silu_ = false;
  std::vector<Layer> enc_, dec_;
};

}  // namespace vg
