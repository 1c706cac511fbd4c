#include "models/autoencoder_kl.h"

#include <algorithm>
#include <cmath>

#include "backend/cpu/bf16.h"
#include "core/error.h"
#include "models/config_util.h"

namespace vg {

namespace {
constexpr float kVaeEps = 1e-6f;

// Older diffusers files name the VAE attention query/key/value/proj_attn.
void alias_legacy_attention(WeightStore& w, const std::string& p) {
  static const std::pair<const char*, const char*> kMap[] = {
      {"query", "to_q"}, {"key", "to_k"}, {"value", "to_v"}, {"proj_attn", "to_out.0"}};
  for (auto& [old_name, new_name] : kMap)
    for (const char* suffix : {".weight", ".bias"})
      if (!w.has(p + new_name + suffix) && w.has(p + old_name + suffix))
        w.add_alias(p + new_name + suffix, w.find(p + old_name + suffix));
}
}  // namespace

VaeConfig VaeConfig::from_json_file(const std::string& path) { return from_json(read_json_file(path, "VAE"), path); }

VaeConfig VaeConfig::from_json(const nlohmann::json& j, const std::string& path) {
  VaeConfig c;
  try {
    c.in_channels = j.value("in_channels", c.in_channels);
    c.out_channels = j.value("out_channels", c.out_channels);
    c.latent_channels = j.value("latent_channels", c.latent_channels);
    c.block_out_channels = j.value("block_out_channels", c.block_out_channels);
    c.layers_per_block = j.value("layers_per_block", c.layers_per_block);
    c.norm_num_groups = j.value("norm_num_groups", c.norm_num_groups);
    if (j.contains("scaling_factor") && j["scaling_factor"].is_number())
      c.scaling_factor = j["scaling_factor"].get<float>();
    if (j.contains("shift_factor") && j["shift_factor"].is_number())
      c.shift_factor = j["shift_factor"].get<float>();
    c.use_quant_conv = j.value("use_quant_conv", true);
    c.use_post_quant_conv = j.value("use_post_quant_conv", true);
  } catch (const nlohmann::json::exception& e) {
    fail(ErrorCode::kCorruptFile, "'" + path + "' has a field of the wrong type: " + e.what());
  }
  if (c.block_out_channels.empty() || c.layers_per_block <= 0)
    fail(ErrorCode::kCorruptFile, "'" + path + "' has no blocks");
  return c;
}

AutoencoderKL::AutoencoderKL(const VaeConfig& cfg, const WeightStore& w_in, bool with_encoder)
    : cfg_(cfg) {
  WeightStore w = w_in;
  alias_legacy_attention(w, "encoder.mid_block.attentions.0.");
  alias_legacy_attention(w, "decoder.mid_block.attentions.0.");
  const auto& boc = cfg.block_out_channels;
  const size_t n = boc.size();
  const int g = cfg.norm_num_groups;
  const int64_t lc = cfg.latent_channels, top = boc[n - 1];
  auto make_mid = [&](const std::string& p) {
    Mid m;
    m.resnets.emplace_back(w, p + "resnets.0.", top, top, 0, g, kVaeEps);
    m.attn.emplace_back(w, p + "attentions.0.", top, g);
    m.resnets.emplace_back(w, p + "resnets.1.", top, top, 0, g, kVaeEps);
    return m;
  };
  has_encoder_ = with_encoder && w.has("encoder.conv_in.weight");
  if (has_encoder_) {
    enc_in_ = load_conv(w, "encoder.conv_in", boc[0], cfg.in_channels, 3, 1, 1, 1);
    int64_t out_ch = boc[0];
    for (size_t i = 0; i < n; ++i) {
      const int64_t in_ch = out_ch;
      out_ch = boc[i];
      Stage s;
      const std::string p = "encoder.down_blocks." + std::to_string(i) + ".";
      for (int64_t j = 0; j < cfg.layers_per_block; ++j)
        s.resnets.emplace_back(w, p + "resnets." + std::to_string(j) + ".", j == 0 ? in_ch : out_ch,
                               out_ch, 0, g, kVaeEps);
      // diffusers pads (0,1,0,1) and convolves with stride 2, no padding.
      if (i + 1 < n) s.resample = load_conv(w, p + "downsamplers.0.conv", out_ch, out_ch, 3, 2, 0, 1);
      down_.push_back(std::move(s));
    }
    enc_mid_ = make_mid("encoder.mid_block.");
    enc_norm_.load(w, "encoder.conv_norm_out", top, g, kVaeEps);
    enc_out_ = load_conv(w, "encoder.conv_out", 2 * lc, top, 3, 1, 1, 1);
    if (cfg.use_quant_conv) quant_ = load_conv(w, "quant_conv", 2 * lc, 2 * lc, 1, 1, 0, 0);
  }
  if (cfg.use_post_quant_conv) post_quant_ = load_conv(w, "post_quant_conv", lc, lc, 1, 1, 0, 0);
  dec_in_ = load_conv(w, "decoder.conv_in", top, lc, 3, 1, 1, 1);
  dec_mid_ = make_mid("decoder.mid_block.");
  int64_t prev = top;
  for (size_t i = 0; i < n; ++i) {
    const int64_t out_ch = boc[n - 1 - i];
    Stage s;
    const std::string p = "decoder.up_blocks." + std::to_string(i) + ".";
    for (int64_t j = 0; j < cfg.layers_per_block + 1; ++j)
      s.resnets.emplace_back(w, p + "resnets." + std::to_string(j) + ".", j == 0 ? prev : out_ch,
                             out_ch, 0, g, kVaeEps);
    if (i + 1 < n) s.resample = load_conv(w, p + "upsamplers.0.conv", out_ch, out_ch, 3, 1, 1, 1);
    prev = out_ch;
    up_.push_back(std::move(s));
  }
  dec_norm_.load(w, "decoder.conv_norm_out", boc[0], g, kVaeEps);
  dec_out_ = load_conv(w, "decoder.conv_out", cfg.out_channels, boc[0], 3, 1, 1, 1);
}

Tensor AutoencoderKL::decode(const Tensor& z) const {
  // One pass per image (or tile): its memory goes back after it.
  return planned_decode_.run(z.shape(), [&] { return decode_pass(z); }, /*keep_buffer=*/false);
}

Tensor AutoencoderKL::decode_pass(const Tensor& z) const {
  if (z.rank() != 4 || z.dim(3) != cfg_.latent_channels)
    fail(ErrorCode::kShapeMismatch, "VAE decode expects " + std::to_string(cfg_.latent_channels) +
                                        " latent channels, got " + shape_str(z.shape()));
  Tensor h = dec_in_.forward(post_quant_.loaded() ? post_quant_.forward(z) : z);
  h = dec_mid_.resnets[0].forward(std::move(h), Tensor());
  h = dec_mid_.attn[0].forward(h);
  h = dec_mid_.resnets[1].forward(std::move(h), Tensor());
  for (const Stage& s : up_) {
    for (const auto& r : s.resnets) h = r.forward(std::move(h), Tensor());
    if (s.resample && s.resample->bf16()) {  // upsample straight into the convolution's bf16 input
      const int64_t n = h.dim(0), oh = h.dim(1) * 2, ow = h.dim(2) * 2, cnt = n * oh * ow * h.dim(3);
      upsample_nearest_to_bf16(h, oh, ow, bf16_scratch(0, cnt));
      h = Tensor();
      h = s.resample->forward_bf16_input(bf16_scratch(0, cnt), n, oh, ow);
    } else if (s.resample) {
      Tensor up = upsample_nearest(h, h.dim(1) * 2, h.dim(2) * 2);
      h = Tensor();  // before the convolution's output exists
      h = s.resample->forward(up);
    }
  }
  if (!h.sole_owner()) return dec_out_.forward(dec_norm_(h, true));
  group_norm_inplace(h, dec_norm_.groups, dec_norm_.weight, dec_norm_.bias, dec_norm_.eps, true);
  return dec_out_.forward(h);
}

namespace {

// b's first `extent` rows (axis 1) or columns (axis 2) become a linear
// cross-fade from a's last ones, as diffusers' blend_v / blend_h do.
void blend(const Tensor& a, Tensor& b, int axis, int64_t extent) {
  const int64_t n = b.dim(0), c = b.dim(3);
  extent = std::min({a.dim(axis), b.dim(axis), extent});
  for (int64_t bi = 0; bi < n; ++bi)
    for (int64_t y = 0; y < b.dim(1); ++y)
      for (int64_t x = 0; x < b.dim(2); ++x) {
        const int64_t t = axis == 1 ? y : x;
        if (t >= extent) continue;
        const int64_t ay = axis == 1 ? a.dim(1) - extent + y : y, ax = axis == 2 ? a.dim(2) - extent + x : x;
        if (ay >= a.dim(1) || ax >= a.dim(2)) continue;
        const float wb = static_cast<float>(t) / static_cast<float>(extent);
        float* pb = b.data() + ((bi * b.dim(1) + y) * b.dim(2) + x) * c;
        const float* pa = a.data() + ((bi * a.dim(1) + ay) * a.dim(2) + ax) * c;
        for (int64_t k = 0; k < c; ++k) pb[k] = pa[k] * (1.0f - wb) + pb[k] * wb;
      }
}

Tensor crop(const Tensor& t, int64_t y0, int64_t x0, int64_t h, int64_t w) {
  h = std::min(h, t.dim(1) - y0);
  w = std::min(w, t.dim(2) - x0);
  const int64_t n = t.dim(0), c = t.dim(3);
  Tensor o({n, h, w, c});
  for (int64_t b = 0; b < n; ++b)
    for (int64_t y = 0; y < h; ++y)
      std::copy_n(t.data() + ((b * t.dim(1) + y0 + y) * t.dim(2) + x0) * c, w * c, o.data() + (b * h + y) * w * c);
  return o;
}

// diffusers' tiled_decode / tiled_encode: tiles of `tile` input pixels at a
// stride of tile * (1 - overlap); each tile cross-fades its first rows and
// columns with its top and left neighbours, then keeps `limit` of them.
template <typename Fn>
Tensor tiled(const Tensor& in, int64_t tile, float overlap, int64_t out_tile, const Fn& run) {
  const int64_t stride = static_cast<int64_t>(static_cast<float>(tile) * (1.0f - overlap));
  const int64_t extent = static_cast<int64_t>(static_cast<float>(out_tile) * overlap), limit = out_tile - extent;
  std::vector<std::vector<Tensor>> rows;
  for (int64_t i = 0; i < in.dim(1); i += stride) {
    rows.emplace_back();
    for (int64_t j = 0; j < in.dim(2); j += stride) {
      rows.back().push_back(run(crop(in, i, j, tile, tile)));
      tensor_pool_trim();  // edge tiles have other shapes: keep one tile's buffers at a time
    }
  }
  std::vector<std::vector<Tensor>> kept(rows.size());
  int64_t H = 0, W = 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    W = 0;
    for (size_t j = 0; j < rows[i].size(); ++j) {
      Tensor& t = rows[i][j];
      if (i > 0) blend(rows[i - 1][j], t, 1, extent);
      if (j > 0) blend(rows[i][j - 1], t, 2, extent);
      kept[i].push_back(crop(t, 0, 0, limit, limit));
      W += kept[i].back().dim(2);
    }
    H += kept[i].front().dim(1);
  }
  const int64_t n = in.dim(0), c = kept[0][0].dim(3);
  Tensor out({n, H, W, c});
  int64_t y0 = 0;
  for (const auto& row : kept) {
    int64_t x0 = 0;
    for (const Tensor& t : row) {
      for (int64_t b = 0; b < n; ++b)
        for (int64_t y = 0; y < t.dim(1); ++y)
          std::copy_n(t.data() + (b * t.dim(1) + y) * t.dim(2) * c, t.dim(2) * c, out.data() + ((b * H + y0 + y) * W + x0) * c);
      x0 += t.dim(2);
    }
    y0 += row.front().dim(1);
  }
  return out;
}

}  // namespace

Tensor AutoencoderKL::decode_tiled(const Tensor& z, int64_t tile, float overlap) const {
  if (tile < 2 || overlap < 0.0f || overlap >= 1.0f || static_cast<int64_t>(static_cast<float>(tile) * (1.0f - overlap)) < 1)
    fail(ErrorCode::kInvalidArgument, "VAE tiles need tile >= 2 latents and an overlap in [0, 1)");
  if (z.dim(1) <= tile && z.dim(2) <= tile) return decode(z);
  return tiled(z, tile, overlap, tile * scale(), [this](const Tensor& t) { return decode(t); });
}

Posterior AutoencoderKL::encode_tiled(const Tensor& image, int64_t tile, float overlap) const {
  if (tile < 2 * scale() || overlap < 0.0f || overlap >= 1.0f)
    fail(ErrorCode::kInvalidArgument, "VAE tiles need tile >= 2 latents and an overlap in [0, 1)");
  if (image.dim(1) <= tile && image.dim(2) <= tile) return encode(image);
  // the moments (mean, logvar) are tiled and blended; std follows from logvar
  const int64_t lc = cfg_.latent_channels;
  Tensor moments = tiled(image, tile, overlap, tile / scale(), [&](const Tensor& t) {
    Posterior p = encode(t);
    Tensor m({p.mean.dim(0), p.mean.dim(1), p.mean.dim(2), 2 * lc});
    for (int64_t i = 0; i < p.mean.numel() / lc; ++i)
      for (int64_t c = 0; c < lc; ++c) {
        m.data()[i * 2 * lc + c] = p.mean.data()[i * lc + c];
        m.data()[i * 2 * lc + lc + c] = p.logvar.data()[i * lc + c];
      }
    return m;
  });
  Shape s = moments.shape();
  s.back() = lc;
  Posterior p{Tensor(s), Tensor(s), Tensor(s)};
  for (int64_t i = 0; i < moments.numel() / (2 * lc); ++i)
    for (int64_t c = 0; c < lc; ++c) {
      p.mean.data()[i * lc + c] = moments.data()[i * 2 * lc + c];
      const float lv = moments.data()[i * 2 * lc + lc + c];
      p.logvar.data()[i * lc + c] = lv;
      p.std.data()[i * lc + c] = std::exp(0.5f * lv);
    }
  return p;
}

Tensor AutoencoderKL::decode_with(const Tensor& z, const std::string& tiling) const {
  TensorPoolBypass bypass;  // one pass of many sizes: do not keep its buffers
  if (tiling == "on" || (tiling == "auto" && z.dim(1) * z.dim(2) > 96 * 96)) return decode_tiled(z);
  return decode(z);
}

Posterior AutoencoderKL::encode_with(const Tensor& image, const std::string& tiling) const {
  TensorPoolBypass bypass;
  const int64_t s = scale();
  if (tiling == "on" || (tiling == "auto" && image.dim(1) * image.dim(2) > 96 * 96 * s * s)) return encode_tiled(image);
  return encode(image);
}

Tensor AutoencoderKL::encode_moments(const Tensor& image) const {
  Tensor h = enc_in_.forward(image);
  for (const Stage& s : down_) {
    for (const auto& r : s.resnets) h = r.forward(std::move(h), Tensor());
    if (s.resample) h = s.resample->forward(h);
  }
  h = enc_mid_.resnets[0].forward(std::move(h), Tensor());
  h = enc_mid_.attn[0].forward(h);
  h = enc_mid_.resnets[1].forward(std::move(h), Tensor());
  Tensor moments = enc_out_.forward(enc_norm_(h, true));
  return quant_.loaded() ? quant_.forward(moments) : moments;
}

Posterior AutoencoderKL::encode(const Tensor& image) const {
  if (!has_encoder_)
    fail(ErrorCode::kMissingComponent, "this VAE has no encoder weights; image-to-image needs a full VAE");
  if (image.rank() != 4 || image.dim(3) != cfg_.in_channels)
    fail(ErrorCode::kShapeMismatch, "VAE encode expects " + std::to_string(cfg_.in_channels) +
                                        " image channels, got " + shape_str(image.shape()));
  // Planned like the decoder; the buffer goes back after each encode.
  Tensor moments = planned_encode_.run(image.shape(), [&] { return encode_moments(image); }, /*keep_buffer=*/false);
  const int64_t lc = cfg_.latent_channels, m = moments.numel() / (2 * lc);
  Shape s = moments.shape();
  s.back() = lc;
  Posterior p{Tensor(s), Tensor(s), Tensor(s)};
  for (int64_t i = 0; i < m; ++i)
    for (int64_t c = 0; c < lc; ++c) {
      const float mean = moments.data()[i * 2 * lc + c];
      const float lv = std::clamp(moments.data()[i * 2 * lc + lc + c], -30.0f, 20.0f);
      p.mean.data()[i * lc + c] = mean;
      p.logvar.data()[i * lc + c] = lv;
      p.std.data()[i * lc + c] = std::exp(0.5f * lv);
    }
  return p;
}

double AutoencoderKL::decode_flops(int64_t n, int64_t h, int64_t w) const {
  double f = dec_in_.flops(n, h, w);
  f += (dec_mid_.resnets[0].flops(n, h, w)) * 2;
  const double t = static_cast<double>(h * w), c = static_cast<double>(cfg_.block_out_channels.back());
  f += n * (2 * t * c * c * 4 + 2 * 2 * t * t * c);
  for (const Stage& s : up_) {
    for (const auto& r : s.resnets) f += r.flops(n, h, w);
    if (s.resample) {
      h *= 2;
      w *= 2;
      f += s.resample->flops(n, h, w);
    }
  }
  return f + dec_out_.flops(n, h, w);
}

}  // namespace vg
