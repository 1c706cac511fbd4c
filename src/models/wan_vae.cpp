#include "models/wan_vae.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <variant>

#include "backend/cpu/ops.h"
#include "core/error.h"
#include "models/blocks.h"
#include "models/config_util.h"
#include "models/wan22_vae_blocks.h"
#include "models/wan_vae_blocks.h"

namespace vg {

using namespace wan;

// ---- config ----

int64_t WanVaeConfig::temporal_scale() const {
  return int64_t{1} << std::count(temperal_downsample.begin(), temperal_downsample.end(), true);
}

WanVaeConfig WanVaeConfig::from_json_file(const std::string& path) {
  return from_json(read_json_file(path, "VAE"), path);
}

WanVaeConfig WanVaeConfig::from_json(const nlohmann::json& j, const std::string& source) {
  WanVaeConfig c;
  const std::string bad = "'" + source + "' ";
  try {
    auto optional_int = [&](const char* key, int64_t fallback) {  // absent or null: the fallback
      return j.contains(key) && !j[key].is_null() ? j[key].get<int64_t>() : fallback;
    };
    c.is_residual = j.value("is_residual", c.is_residual);
    c.patch_size = optional_int("patch_size", 1);
    c.decoder_base_dim = optional_int("decoder_base_dim", 0);
    if (c.patch_size < 1 || c.patch_size > 8)
      fail(ErrorCode::kCorruptFile, bad + "has patch_size " + std::to_string(c.patch_size) + " (needs 1..8)");
    // RGB in and out: 3 channels, or 3 * patch_size^2 counted after patchify
    const int64_t patched = 3 * c.patch_size * c.patch_size;
    c.in_channels = c.out_channels = patched;
    for (const char* key : {"input_channels", "in_channels", "out_channels"}) {
      const int64_t v = optional_int(key, patched);
      if (v != 3 && v != patched)
        fail(ErrorCode::kUnsupportedModel, bad + "has " + key + " " + std::to_string(v) +
                                               "; only RGB Wan VAEs (3 channels, " + std::to_string(patched) +
                                               " patchified) are supported");
    }
    c.base_dim = j.value("base_dim", c.base_dim);
    c.z_dim = j.value("z_dim", c.z_dim);
    c.num_res_blocks = j.value("num_res_blocks", c.num_res_blocks);
    c.dim_mult = j.value("dim_mult", c.dim_mult);
    if (j.contains("attn_scales") && !j["attn_scales"].is_null())
      c.attn_scales = j["attn_scales"].get<std::vector<float>>();
    c.temperal_downsample = j.value("temperal_downsample", c.temperal_downsample);
    const bool has_mean = j.contains("latents_mean") && !j["latents_mean"].is_null();
    const bool has_std = j.contains("latents_std") && !j["latents_std"].is_null();
    if (has_mean) c.latents_mean = j["latents_mean"].get<std::vector<float>>();
    if (has_std) c.latents_std = j["latents_std"].get<std::vector<float>>();
    // the defaults are the published statistics of 16 (Wan 2.1) or 48 (Wan 2.2) channels
    if (c.z_dim == 48 && !has_mean) c.latents_mean = wan22_latents_mean();
    if (c.z_dim == 48 && !has_std) c.latents_std = wan22_latents_std();
    if (c.z_dim != 16 && c.z_dim != 48 && !has_mean) c.latents_mean.clear();
    if (c.z_dim != 16 && c.z_dim != 48 && !has_std) c.latents_std.clear();
    // diffusers' derived scale factors, when listed, must agree with the architecture
    const std::pair<const char*, int64_t> scales[] = {{"scale_factor_spatial", c.spatial_scale()},
                                                      {"scale_factor_temporal", c.temporal_scale()}};
    for (const auto& [key, want] : scales)
      if (optional_int(key, want) != want)
        fail(ErrorCode::kCorruptFile, bad + "has " + key + " " + std::to_string(j[key].get<int64_t>()) +
                                          " but its layers give " + std::to_string(want));
  } catch (const nlohmann::json::exception& e) {
    fail(ErrorCode::kCorruptFile, bad + "has a field of the wrong type: " + e.what());
  }
  if (c.base_dim <= 0 || c.z_dim <= 0 || c.num_res_blocks <= 0 || c.dim_mult.empty() ||
      c.decoder_base_dim < 0 ||
      std::any_of(c.dim_mult.begin(), c.dim_mult.end(), [](int64_t m) { return m <= 0; }))
    fail(ErrorCode::kCorruptFile, bad + "needs positive base_dim, z_dim, num_res_blocks and dim_mult");
  if (c.temperal_downsample.size() + 1 != c.dim_mult.size())
    fail(ErrorCode::kCorruptFile, bad + "has " + std::to_string(c.temperal_downsample.size()) +
                                      " temperal_downsample entries for " +
                                      std::to_string(c.dim_mult.size()) + " levels (needs one fewer)");
  for (const auto* v : {&c.latents_mean, &c.latents_std})
    if (!v->empty() && static_cast<int64_t>(v->size()) != c.z_dim)
      fail(ErrorCode::kCorruptFile, bad + "has " + std::to_string(v->size()) +
                                        " latents_mean/latents_std values for z_dim " +
                                        std::to_string(c.z_dim));
  return c;
}

WanVaeConfig WanVaeConfig::from_weights(const WeightStore& w) {
  auto shape_of = [&](const std::string& name) -> const Shape& {
    const TensorInfo* ti = w.find(name);
    if (!ti || ti->shape.size() < 2)
      fail(ErrorCode::kUnsupportedModel,
           "weight '" + name + "' is missing from " + w.describe() +
               "; this is not a Wan / Qwen-Image VAE (or it needs its config.json)");
    return ti->shape;
  };
  auto up = [](int64_t i) { return "decoder.up_blocks." + std::to_string(i) + "."; };
  WanVaeConfig c;
  c.z_dim = shape_of("decoder.conv_in.weight")[1];
  c.base_dim = shape_of("decoder.conv_out.weight")[1];
  // Wan 2.2: residual blocks (`upsampler`, `down_blocks.N.resnets`), its own
  // decoder width, RGB patchified into the convolutions' channels
  c.is_residual =
      w.has(up(0) + "upsampler.resample.1.weight") || w.has("encoder.down_blocks.0.resnets.0.conv1.weight");
  const int64_t rgb = shape_of("decoder.conv_out.weight")[0];
  while (3 * c.patch_size * c.patch_size < rgb) ++c.patch_size;
  if (3 * c.patch_size * c.patch_size != rgb)
    fail(ErrorCode::kUnsupportedModel, w.describe() + ": the VAE decoder has " + std::to_string(rgb) +
                                           " output channels; only RGB Wan VAEs (3 * patch^2) are supported");
  c.in_channels = c.out_channels = rgb;
  if (c.is_residual) {
    c.decoder_base_dim = c.base_dim;
    if (w.has("encoder.conv_in.weight")) c.base_dim = shape_of("encoder.conv_in.weight")[0];
  }
  const int64_t dec = c.decoder_dim();
  int64_t levels = 0, resnets = 0;
  while (w.has(up(levels) + "resnets.0.conv1.weight")) ++levels;
  while (w.has(up(0) + "resnets." + std::to_string(resnets) + ".conv1.weight")) ++resnets;
  if (levels == 0 || resnets < 2 || c.base_dim <= 0)
    fail(ErrorCode::kUnsupportedModel,
         w.describe() + " has no Wan VAE decoder blocks (decoder.up_blocks.N.resnets.M)");
  c.num_res_blocks = resnets - 1;
  c.dim_mult.assign(static_cast<size_t>(levels), 1);
  c.temperal_downsample.assign(static_cast<size_t>(levels - 1), false);
  for (int64_t i = 0; i < levels; ++i) {
    c.dim_mult[static_cast<size_t>(levels - 1 - i)] = shape_of(up(i) + "resnets.0.conv1.weight")[0] / dec;
    // the decoder upsamples in time where the encoder downsampled, in reverse
    if (i + 1 < levels)
      c.temperal_downsample[static_cast<size_t>(levels - 2 - i)] =
          w.has(up(i) + (c.is_residual ? "upsampler.time_conv.weight" : "upsamplers.0.time_conv.weight"));
  }
  if (c.z_dim == 48) c.latents_mean = wan22_latents_mean(), c.latents_std = wan22_latents_std();
  if (c.z_dim != 16 && c.z_dim != 48) c.latents_mean.clear(), c.latents_std.clear();
  return c;
}

// ---- encoder / decoder ----

namespace wan {

class Encoder : public Stage {
 public:
  Encoder(const WanVaeConfig& cfg, const WeightStore& w) {
    std::vector<int64_t> dims{cfg.base_dim};
    for (int64_t m : cfg.dim_mult) dims.push_back(cfg.base_dim * m);
    const int64_t rgb = 3 * cfg.patch_size * cfg.patch_size;
    conv_in_ = CausalConv3d(w, "encoder.conv_in", dims[0], rgb, 3, 3, slots_++);
    float scale = 1.0f;
    int idx = 0;
    auto name = [&] { return "encoder.down_blocks." + std::to_string(idx++) + "."; };
    for (size_t i = 0; i + 1 < dims.size(); ++i) {
      int64_t in = dims[i];
      const int64_t out = dims[i + 1];
      for (int64_t r = 0; r < cfg.num_res_blocks; ++r) {
        down_.emplace_back(ResidualBlock(w, name(), in, out, slots_));
        if (std::find(cfg.attn_scales.begin(), cfg.attn_scales.end(), scale) != cfg.attn_scales.end())
          down_.emplace_back(AttentionBlock(w, name(), out));
        in = out;
      }
      if (i + 2 < dims.size()) {
        const auto mode = cfg.temperal_downsample[i] ? ResampleMode::kDown3d : ResampleMode::kDown2d;
        down_.emplace_back(Resample(w, name(), out, mode, slots_));
        scale /= 2.0f;
      }
    }
    const int64_t top = dims.back();
    mid_res_.emplace_back(w, "encoder.mid_block.resnets.0.", top, top, slots_);
    mid_attn_.emplace_back(w, "encoder.mid_block.attentions.0.", top);
    mid_res_.emplace_back(w, "encoder.mid_block.resnets.1.", top, top, slots_);
    norm_out_ = w.get("encoder.norm_out.gamma", {top});
    conv_out_ = CausalConv3d(w, "encoder.conv_out", 2 * cfg.z_dim, top, 3, 3, slots_++);
  }
  int slots() const override { return slots_; }

  // [T, H, W, 3] -> [T', H/8, W/8, 2 z_dim]
  Tensor forward(const Tensor& x, Pass& pass) const override {
    Tensor h = conv_in_.forward(x, pass);
    for (const Layer& l : down_) {
      if (const auto* r = std::get_if<ResidualBlock>(&l))
        h = r->forward(h, pass);
      else if (const auto* a = std::get_if<AttentionBlock>(&l))
        h = a->forward(h);
      else
        h = std::get<Resample>(l).forward(h, pass);
    }
    h = mid_res_[0].forward(h, pass);
    h = mid_attn_[0].forward(h);
    h = mid_res_[1].forward(h, pass);
    return conv_out_.forward(rms_norm(h, norm_out_, true), pass);
  }

 private:
  using Layer = std::variant<ResidualBlock, AttentionBlock, Resample>;
  int slots_ = 0;
  CausalConv3d conv_in_, conv_out_;
  std::vector<Layer> down_;
  std::vector<ResidualBlock> mid_res_;
  std::vector<AttentionBlock> mid_attn_;
  Tensor norm_out_;
};

class Decoder : public Stage {
 public:
  Decoder(const WanVaeConfig& cfg, const WeightStore& w) {
    const size_t n = cfg.dim_mult.size();
    std::vector<int64_t> dims{cfg.base_dim * cfg.dim_mult.back()};
    for (size_t i = n; i-- > 0;) dims.push_back(cfg.base_dim * cfg.dim_mult[i]);
    conv_in_ = CausalConv3d(w, "decoder.conv_in", dims[0], cfg.z_dim, 3, 3, slots_++);
    mid_res_.emplace_back(w, "decoder.mid_block.resnets.0.", dims[0], dims[0], slots_);
    mid_attn_.emplace_back(w, "decoder.mid_block.attentions.0.", dims[0]);
    mid_res_.emplace_back(w, "decoder.mid_block.resnets.1.", dims[0], dims[0], slots_);
    for (size_t i = 0; i < n; ++i) {
      // each upsampler halves the channels, so later levels start from half
      int64_t in = i > 0 ? dims[i] / 2 : dims[i];
      const int64_t out = dims[i + 1];
      const std::string p = "decoder.up_blocks." + std::to_string(i) + ".";
      UpBlock b;
      for (int64_t r = 0; r <= cfg.num_res_blocks; ++r, in = out)
        b.resnets.emplace_back(w, p + "resnets." + std::to_string(r) + ".", in, out, slots_);
      if (i + 1 < n) {
        const bool t = cfg.temperal_downsample[n - 2 - i];  // reversed: temperal_upsample[i]
        b.upsampler.emplace_back(w, p + "upsamplers.0.", out, t ? ResampleMode::kUp3d : ResampleMode::kUp2d,
                                 slots_);
      }
      up_.push_back(std::move(b));
    }
    norm_out_ = w.get("decoder.norm_out.gamma", {dims.back()});
    const int64_t rgb = 3 * cfg.patch_size * cfg.patch_size;
    conv_out_ = CausalConv3d(w, "decoder.conv_out", rgb, dims.back(), 3, 3, slots_++);
  }
  int slots() const override { return slots_; }

  // one latent frame [1, h, w, z] -> its video frames [1 or 4, 8h, 8w, 3]
  Tensor forward(const Tensor& z, Pass& pass) const override {
    Tensor h = conv_in_.forward(z, pass);
    h = mid_res_[0].forward(h, pass);
    h = mid_attn_[0].forward(h);
    h = mid_res_[1].forward(h, pass);
    for (const UpBlock& b : up_) {
      for (const ResidualBlock& r : b.resnets) h = r.forward(h, pass);
      if (!b.upsampler.empty()) h = b.upsampler[0].forward(h, pass);
    }
    return conv_out_.forward(rms_norm(h, norm_out_, true), pass);
  }

 private:
  struct UpBlock {
    std::vector<ResidualBlock> resnets;
    std::vector<Resample> upsampler;  // none at the last level
  };
  int slots_ = 0;
  CausalConv3d conv_in_, conv_out_;
  std::vector<ResidualBlock> mid_res_;
  std::vector<AttentionBlock> mid_attn_;
  std::vector<UpBlock> up_;
  Tensor norm_out_;
};

}  // namespace wan

// ---- the model ----

WanVae::WanVae(const WanVaeConfig& cfg, const WeightStore& w, bool with_encoder) : cfg_(cfg) {
  if (cfg.temperal_downsample.size() + 1 != cfg.dim_mult.size())
    fail(ErrorCode::kInvalidArgument,
         "Wan VAE config: temperal_downsample needs one entry fewer than dim_mult");
  if (cfg.is_residual)
    decoder_ = std::make_unique<ResidualDecoder>(cfg, w);
  else
    decoder_ = std::make_unique<Decoder>(cfg, w);
  post_quant_ = load_conv(w, "post_quant_conv", cfg.z_dim, cfg.z_dim, 1, 1, 0, 0);
  if (with_encoder && w.has("encoder.conv_in.weight")) {
    if (cfg.is_residual)
      encoder_ = std::make_unique<ResidualEncoder>(cfg, w);
    else
      encoder_ = std::make_unique<Encoder>(cfg, w);
    quant_ = load_conv(w, "quant_conv", 2 * cfg.z_dim, 2 * cfg.z_dim, 1, 1, 0, 0);
  }
}

WanVae::~WanVae() = default;
WanVae::WanVae(WanVae&&) noexcept = default;
WanVae& WanVae::operator=(WanVae&&) noexcept = default;

Posterior WanVae::encode(const Tensor& video) const {
  if (!encoder_)
    fail(ErrorCode::kMissingComponent,
         "this Wan VAE has no encoder weights; image-to-image needs a full VAE");
  const int64_t s_all = cfg_.spatial_scale(), patch = cfg_.patch_size;
  if (video.rank() != 4 || video.dim(3) != 3 || video.dim(0) < 1 || (video.dim(0) - 1) % 4 != 0 ||
      video.dim(1) % s_all != 0 || video.dim(2) % s_all != 0)
    fail(ErrorCode::kShapeMismatch, "Wan VAE encode expects frames [1+4k, H, W, 3] with H, W multiples of " +
                                        std::to_string(s_all) + ", got " + shape_str(video.shape()));
  TensorPoolBypass bypass;  // one pass of many sizes: do not keep its buffers
  Pass pass;
  pass.caches.resize(static_cast<size_t>(encoder_->slots()));
  // the first frame alone, then 4 at a time: each chunk gives one latent frame
  const int64_t chunks = 1 + (video.dim(0) - 1) / 4, fsize = video.numel() / video.dim(0);
  std::vector<Tensor> parts;
  for (int64_t i = 0; i < chunks; ++i) {
    const int64_t begin = i == 0 ? 0 : 1 + 4 * (i - 1), n = i == 0 ? 1 : 4;
    Shape s = video.shape();
    s[0] = n;
    pass.last = i + 1 == chunks;
    const Tensor chunk = Tensor::wrap(
        s,
        std::shared_ptr<float>(std::shared_ptr<float>(), const_cast<float*>(video.data()) + begin * fsize));
    parts.push_back(encoder_->forward(patch > 1 ? patchify(chunk, patch) : chunk, pass));
  }
  pass = Pass();
  const Tensor moments = quant_.forward(parts.size() == 1 ? parts[0] : concat_frames(parts));
  const int64_t zc = cfg_.z_dim, m = moments.numel() / (2 * zc);
  Shape s = moments.shape();
  s.back() = zc;
  Posterior p{Tensor(s), Tensor(s), Tensor(s)};
  for (int64_t i = 0; i < m; ++i)
    for (int64_t c = 0; c < zc; ++c) {
      const float lv = std::clamp(moments.data()[i * 2 * zc + zc + c], -30.0f, 20.0f);
      p.mean.data()[i * zc + c] = moments.data()[i * 2 * zc + c];
      p.logvar.data()[i * zc + c] = lv;
      p.std.data()[i * zc + c] = std::exp(0.5f * lv);
    }
  return p;
}

Tensor WanVae::decode_patchified(const Tensor& z) const {
  const Tensor x = post_quant_.forward(z);
  Pass pass;
  pass.caches.resize(static_cast<size_t>(decoder_->slots()));
  const int64_t frames = z.dim(0);
  std::vector<Tensor> parts;
  for (int64_t i = 0; i < frames; ++i) {  // one latent frame at a time
    pass.first = i == 0;
    pass.last = i + 1 == frames;
    parts.push_back(decoder_->forward(frames_of(x, i, i + 1), pass));
  }
  pass = Pass();
  return parts.size() == 1 ? std::move(parts[0]) : concat_frames(parts);
}

Tensor WanVae::decode(const Tensor& z, const WanTiling& tiling) const {
  if (z.rank() != 4 || z.dim(3) != cfg_.z_dim || z.dim(0) < 1)
    fail(ErrorCode::kShapeMismatch, "Wan VAE decode expects latents [frames, h, w, " +
                                        std::to_string(cfg_.z_dim) + "], got " + shape_str(z.shape()));
  TensorPoolBypass bypass;
  const int64_t s = cfg_.spatial_scale();
  if (tiling.enabled) check_wan_tiling(tiling, s);
  const bool tiled = tiling.enabled && (z.dim(1) > tiling.tile / s || z.dim(2) > tiling.tile / s);
  Tensor out = tiled ? decode_tiled(z, tiling) : decode_patchified(z);
  const int64_t p = cfg_.patch_size;
  if (p > 1) out = unpatchify(out, p);
  float* d = out.data();
  const int64_t n = out.numel();
#pragma omp parallel for
  for (int64_t i = 0; i < n; ++i) d[i] = std::clamp(d[i], -1.0f, 1.0f);  // as diffusers' _decode
  return out;
}

}  // namespace vg
