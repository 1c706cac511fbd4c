#include "pipelines/vae_choice.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "io/atomic_file.h"
#include "io/weights.h"
#include "pipelines/ldm_common.h"
#include "pipelines/ldm_names.h"
#include "pipelines/sd_engine.h"

namespace vg {

namespace {

// A replacement KL VAE: a diffusers vae/ folder (or a pipeline folder with
// one), or one .safetensors file in diffusers or original (LDM) names. The
// model's VAE config describes a file (same architecture; shapes are checked).
std::unique_ptr<AutoencoderKL> load_kl(const std::string& path, const VaeConfig& model_cfg) {
  if (is_directory(path)) {
    const std::string dir = path_exists(path + "/config.json") ? path : path + "/vae";
    if (!path_exists(dir + "/config.json"))
      fail(ErrorCode::kMissingComponent, "VAE folder '" + path + "' has no config.json (nor vae/config.json)");
    return std::make_unique<AutoencoderKL>(VaeConfig::from_json_file(dir + "/config.json"), open_component_weights(dir, "vae"));
  }
  if (is_pickle_path(path)) refuse_pickle(path);
  auto file = SafetensorsFile::open(path);
  VaeConfig cfg = model_cfg;
  const int levels = static_cast<int>(cfg.block_out_channels.size());
  if (file->has("decoder.conv_in.weight") && file->has("decoder.up_blocks.0.resnets.0.conv1.weight")) {
    WeightStore w;
    w.add_file(file);
    return std::make_unique<AutoencoderKL>(cfg, w);
  }
  const std::string prefix = file->has("first_stage_model.decoder.conv_in.weight") ? "" : "first_stage_model.";
  if (!file->has(prefix.empty() ? "first_stage_model.decoder.conv_in.weight" : "decoder.conv_in.weight"))
    fail(ErrorCode::kUnsupportedModel, "'" + path + "' is not a VAE (no decoder.conv_in.weight in diffusers or original names)");
  WeightStore w = renamed_store(file, [levels, prefix](const std::string& n) {
    const std::string l = vae_to_ldm(n, levels);  // "first_stage_model.<ldm name>"
    return prefix.empty() ? l : l.substr(prefix.size());
  });
  return std::make_unique<AutoencoderKL>(cfg, w);
}

}  // namespace

void VaeChoice::prepare(const SdModel& m, const GenerateParams& p) {
  if (p.vae != vae_path_) {
    kl_.reset();
    tiny_.reset();
    vae_path_.clear();
    if (!p.vae.empty()) {
      if (!path_exists(p.vae)) fail(ErrorCode::kFileNotFound, "VAE '" + p.vae + "' does not exist; pass a VAE folder or .safetensors file");
      if (is_directory(p.vae) && AutoencoderTiny::is_tiny_vae_folder(p.vae)) {
        tiny_ = AutoencoderTiny::load_folder(p.vae);
        if (!tiny_->has_decoder()) fail(ErrorCode::kMissingComponent, "TAESD folder '" + p.vae + "' has no decoder weights");
      } else {
        kl_ = load_kl(p.vae, m.vae->config());
      }
      vae_path_ = p.vae;
    }
  }
  if (tiny_ && tiny_->latent_channels() != m.vae->config().latent_channels)
    fail(ErrorCode::kInvalidArgument, "the VAE '" + p.vae + "' has " + std::to_string(tiny_->latent_channels()) +
                                          " latent channels; this model's latents have " +
                                          std::to_string(m.vae->config().latent_channels));
  // Previews: TAESD when asked (or when one is at hand for "auto"), else the linear approximation.
  std::string method = p.preview;
  const bool have_tiny = !p.preview_vae.empty() || tiny_;
  if (method == "auto") method = have_tiny ? "taesd" : "latent2rgb";
  if (method == "taesd" && !have_tiny)
    fail(ErrorCode::kInvalidArgument, "--preview taesd needs a TAESD folder: pass --preview-vae DIR (madebyollin/taesd for SD 1.x/2.x, taesdxl for SDXL)");
  if (method == "taesd" && !p.preview_vae.empty() && p.preview_vae != preview_path_) {
    preview_tiny_ = AutoencoderTiny::load_folder(p.preview_vae);
    if (!preview_tiny_->has_decoder()) fail(ErrorCode::kMissingComponent, "TAESD folder '" + p.preview_vae + "' has no decoder weights");
    preview_path_ = p.preview_vae;
  }
  method_ = method;
}

int VaeChoice::scale(const SdModel& m) const { return tiny_ ? static_cast<int>(tiny_->scale()) : m.info.vae_scale; }

Image VaeChoice::preview(const Tensor& lat, const SdModel& m) const {
  const AutoencoderTiny* t = method_ == "taesd" ? (preview_tiny_ && !preview_path_.empty() ? preview_tiny_.get() : tiny_.get()) : nullptr;
  if (!t) return latents_preview(lat, m.info.vae_scale, m.info.family);
  return taesd_preview(lat, *t);
}

Image VaeChoice::taesd_preview(const Tensor& lat, const AutoencoderTiny& tiny) {
  const AutoencoderTiny* t = &tiny;
  // Previews of images from 512 px up decode latents averaged 2x2: a quarter
  // of the work (a 512^2 SD1.5 preview costs ~2 % of a step instead of ~9 %),
  // and a preview only shows the image forming; the final decode gives the pixels.
  Tensor z = lat;
  if (lat.dim(1) >= 64 || lat.dim(2) >= 64) {
    const int64_t h = lat.dim(1) / 2, w = lat.dim(2) / 2, c = lat.dim(3);
    z = Tensor({1, h, w, c});
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x)
        for (int64_t k = 0; k < c; ++k) {
          auto at = [&](int64_t yy, int64_t xx) { return lat.data()[((2 * y + yy) * lat.dim(2) + 2 * x + xx) * c + k]; };
          z.data()[(y * w + x) * c + k] = 0.25f * (at(0, 0) + at(0, 1) + at(1, 0) + at(1, 1));
        }
  }
  if (z.dim(0) > 1) z = Tensor::from({1, z.dim(1), z.dim(2), z.dim(3)}, z.data());
  Tensor img = t->decode(z);
  return tensor_to_image(img, 0);
}

VaeSwap::VaeSwap(std::unique_ptr<AutoencoderKL>& model_vae, std::unique_ptr<AutoencoderKL>& other)
    : a_(model_vae), b_(other), swapped_(other != nullptr) {
  if (swapped_) std::swap(a_, b_);
}

VaeSwap::~VaeSwap() {
  if (swapped_) std::swap(a_, b_);
}

}  // namespace vg
