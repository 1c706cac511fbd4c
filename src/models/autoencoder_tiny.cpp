#include "models/autoencoder_tiny.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <map>

#include "backend/cpu/ops.h"
#include "core/error.h"
#include "models/blocks.h"
#include "models/config_util.h"

namespace vg {

namespace fs = std::filesystem;

namespace {

bool is_index(const std::string& s, size_t end) {
  return end > 0 && end <= 6 && end != std::string::npos &&
         std::all_of(s.begin(), s.begin() + static_cast<std::ptrdiff_t>(end),
                     [](unsigned char ch) { return std::isdigit(ch); });
}

std::vector<int64_t> int_list(const nlohmann::json& j, const char* key, std::vector<int64_t> fallback) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  return j[key].get<std::vector<int64_t>>();
}

float number(const nlohmann::json& j, const char* key, float fallback) {
  return j.contains(key) && j[key].is_number() ? j[key].get<float>() : fallback;
}

void check_levels(const std::vector<int64_t>& widths, const std::vector<int64_t>& blocks, const char* what,
                  const std::string& where) {
  if (widths.empty() || widths.size() != blocks.size())
    fail(ErrorCode::kCorruptFile, where + ": the " + std::string(what) + " has " +
                                      std::to_string(widths.size()) + " widths but " +
                                      std::to_string(blocks.size()) + " block counts");
  for (size_t i = 0; i < widths.size(); ++i)
    if (widths[i] <= 0 || blocks[i] < 0)
      fail(ErrorCode::kCorruptFile,
           where + ": the " + std::string(what) + " has a non-positive width or block count");
}

// Per layer index of `<prefix>layers.N`: the conv shape ([O,I,k,k]) or, for a
// block, its first conv's shape. Layers without weights are absent.
struct LayerMap {
  std::map<int, Shape> convs, blocks;
  int max_index = -1;
};

LayerMap scan_layers(const WeightStore& w, const std::string& prefix) {
  LayerMap m;
  for (const auto& [name, info] : w.entries()) {
    if (name.rfind(prefix, 0) != 0) continue;
    const std::string rest = name.substr(prefix.size());
    const size_t dot = rest.find('.');
    if (!is_index(rest, dot)) continue;
    const int idx = std::stoi(rest.substr(0, dot));
    const std::string tail = rest.substr(dot + 1);
    if (tail == "weight")
      m.convs[idx] = info->shape;
    else if (tail == "conv.0.weight")
      m.blocks[idx] = info->shape;
    else
      continue;
    m.max_index = std::max(m.max_index, idx);
  }
  return m;
}

[[noreturn]] void bad_layout(const std::string& what, const std::string& files) {
  fail(ErrorCode::kCorruptFile, "the TAESD " + what + " layers in " + files +
                                    " do not follow the TAESD layout (conv, blocks, upsample, conv, ...); "
                                    "use a diffusers AutoencoderTiny folder with a config.json");
}

// Reads the decoder's levels from its layer indices (conv, act, then per
// level: blocks, [upsample], conv).
void infer_decoder(const LayerMap& m, TinyVaeConfig& c, const std::string& files) {
  auto conv = [&](int i) { return m.convs.count(i) && m.convs.at(i).size() == 4; };
  if (!conv(0)) bad_layout("decoder", files);
  c.latent_channels = m.convs.at(0)[1];
  c.decoder_block_out_channels.clear();
  c.num_decoder_blocks.clear();
  for (int i = 2; i <= m.max_index;) {
    int64_t n = 0;
    for (; m.blocks.count(i); ++i) ++n;
    if (!conv(i)) ++i;  // the upsample has no weights
    if (!conv(i)) bad_layout("decoder", files);
    c.decoder_block_out_channels.push_back(m.convs.at(i)[1]);
    c.num_decoder_blocks.push_back(n);
    c.out_channels = m.convs.at(i)[0];
    ++i;
  }
}

// The encoder: conv, blocks, then per level a stride-2 conv and blocks, and
// a last conv to the latents.
void infer_encoder(const LayerMap& m, TinyVaeConfig& c, const std::string& files) {
  auto conv = [&](int i) { return m.convs.count(i) && m.convs.at(i).size() == 4; };
  if (!conv(0) || m.max_index < 1) bad_layout("encoder", files);
  c.in_channels = m.convs.at(0)[1];
  c.encoder_block_out_channels.clear();
  c.num_encoder_blocks.clear();
  for (int i = 0; i <= m.max_index;) {
    if (!conv(i)) bad_layout("encoder", files);
    if (i == m.max_index) {
      c.latent_channels = m.convs.at(i)[0];
      break;
    }
    c.encoder_block_out_channels.push_back(m.convs.at(i)[0]);
    int64_t n = 0;
    for (++i; m.blocks.count(i); ++i) ++n;
    c.num_encoder_blocks.push_back(n);
  }
}

// madebyollin's files: `<name>_encoder.safetensors` holds the encoder
// Sequential with the same indices as diffusers' encoder.layers; the
// decoder's Sequential starts with a parameterless Clamp, so its index N is
// diffusers' decoder.layers.(N-1).
std::unique_ptr<AutoencoderTiny> load_original(const std::string& dir) {
  std::map<std::string, std::pair<std::string, std::string>> sets;  // name -> (encoder, decoder) files
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string f = e.path().filename().string();
    for (const char* kind : {"_encoder.safetensors", "_decoder.safetensors"}) {
      const std::string k(kind);
      if (f.size() > k.size() && f.compare(f.size() - k.size(), k.size(), k) == 0)
        (k[1] == 'e' ? sets[f.substr(0, f.size() - k.size())].first
                     : sets[f.substr(0, f.size() - k.size())].second) = e.path().string();
    }
  }
  if (sets.empty()) {
    for (const auto& e : fs::directory_iterator(dir))
      if (is_pickle_path(e.path().string())) refuse_pickle(e.path().string());
    fail(ErrorCode::kMissingComponent, "'" + dir +
                                           "' has neither a config.json (diffusers AutoencoderTiny) nor "
                                           "TAESD files such as taesd_decoder.safetensors");
  }
  if (sets.size() > 1) {
    std::string names;
    for (const auto& [n, _] : sets) names += (names.empty() ? "" : ", ") + n;
    fail(ErrorCode::kInvalidArgument,
         "'" + dir + "' holds several TAESD models (" + names + "); put each in its own folder");
  }
  const auto& [enc_path, dec_path] = sets.begin()->second;
  WeightStore w;
  auto add = [&](const std::string& path, const std::string& prefix, int shift) {
    auto file = SafetensorsFile::open(path);
    for (const auto& [name, info] : file->tensors()) {
      const size_t dot = name.find('.');
      int idx = -1;
      if (is_index(name, dot)) idx = std::stoi(name.substr(0, dot)) - shift;
      if (idx < 0)
        fail(ErrorCode::kCorruptFile,
             "'" + path + "' has tensor '" + name +
                 "', which is not a TAESD layer (expected names like 1.conv.0.weight)");
      w.add_alias(prefix + std::to_string(idx) + name.substr(dot), &info);
    }
    w.add_file(file);  // keeps it mapped (its bare names are unused)
  };
  if (!enc_path.empty()) add(enc_path, "encoder.layers.", 0);
  if (!dec_path.empty()) add(dec_path, "decoder.layers.", 1);
  TinyVaeConfig c;
  const std::string files = w.describe();
  if (!enc_path.empty()) infer_encoder(scan_layers(w, "encoder.layers."), c, files);
  if (!dec_path.empty()) infer_decoder(scan_layers(w, "decoder.layers."), c, files);
  return std::make_unique<AutoencoderTiny>(c, w);
}

}  // namespace

TinyVaeConfig TinyVaeConfig::from_json_file(const std::string& path) {
  auto j = read_json_file(path, "AutoencoderTiny");
  TinyVaeConfig c;
  try {
    const std::string cls = j.value("_class_name", std::string("AutoencoderTiny"));
    if (cls != "AutoencoderTiny")
      fail(ErrorCode::kUnsupportedModel,
           "'" + path + "' describes a " + cls + ", not an AutoencoderTiny (TAESD)");
    c.in_channels = j.value("in_channels", c.in_channels);
    c.out_channels = j.value("out_channels", c.out_channels);
    c.latent_channels = j.value("latent_channels", c.latent_channels);
    // Old configs have only block_out_channels, used for both halves.
    const auto both = int_list(j, "block_out_channels", c.encoder_block_out_channels);
    c.encoder_block_out_channels = int_list(j, "encoder_block_out_channels", both);
    c.decoder_block_out_channels = int_list(j, "decoder_block_out_channels", both);
    c.num_encoder_blocks = int_list(j, "num_encoder_blocks", c.num_encoder_blocks);
    c.num_decoder_blocks = int_list(j, "num_decoder_blocks", c.num_decoder_blocks);
    c.act_fn = j.value("act_fn", c.act_fn);
    c.upsampling_scaling_factor = j.value("upsampling_scaling_factor", c.upsampling_scaling_factor);
    const std::string up = j.value("upsample_fn", std::string("nearest"));
    if (up != "nearest")
      fail(ErrorCode::kUnsupportedModel,
           "'" + path + "': upsample_fn '" + up + "' is not supported (only nearest)");
    c.latent_magnitude = number(j, "latent_magnitude", c.latent_magnitude);
    c.latent_shift = number(j, "latent_shift", c.latent_shift);
    c.scaling_factor = number(j, "scaling_factor", c.scaling_factor);
    c.shift_factor = number(j, "shift_factor", c.shift_factor);
  } catch (const nlohmann::json::exception& e) {
    fail(ErrorCode::kCorruptFile, "'" + path + "' has a field of the wrong type: " + e.what());
  }
  check_levels(c.encoder_block_out_channels, c.num_encoder_blocks, "encoder", path);
  check_levels(c.decoder_block_out_channels, c.num_decoder_blocks, "decoder", path);
  if (c.upsampling_scaling_factor < 1 || c.latent_channels <= 0 || c.in_channels <= 0 || c.out_channels <= 0)
    fail(ErrorCode::kCorruptFile, "'" + path + "' has a non-positive channel count or upsampling factor");
  return c;
}

AutoencoderTiny::AutoencoderTiny(const TinyVaeConfig& cfg, const WeightStore& w) : cfg_(cfg) {
  if (cfg.act_fn == "silu" || cfg.act_fn == "swish")
    silu_ = true;
  else if (cfg.act_fn != "relu")
    fail(ErrorCode::kUnsupportedModel,
         "AutoencoderTiny act_fn '" + cfg.act_fn + "' is not supported (relu, silu)");
  check_levels(cfg.encoder_block_out_channels, cfg.num_encoder_blocks, "encoder", "AutoencoderTiny config");
  check_levels(cfg.decoder_block_out_channels, cfg.num_decoder_blocks, "decoder", "AutoencoderTiny config");
  auto conv = [&](const std::string& name, int64_t out, int64_t in, int stride) {
    Layer l{Layer::kConv, {}, {}, {}, {}};
    l.conv = load_conv(w, name, out, in, 3, stride, 1, 1);
    return l;
  };
  auto block = [&](const std::string& p, int64_t ch) {
    Layer l{Layer::kBlock, {}, {}, {}, {}};
    l.c0 = load_conv(w, p + "conv.0", ch, ch, 3, 1, 1, 1);
    l.c1 = load_conv(w, p + "conv.2", ch, ch, 3, 1, 1, 1);
    l.c2 = load_conv(w, p + "conv.4", ch, ch, 3, 1, 1, 1);
    return l;
  };
  // The indices follow diffusers' nn.Sequential, parameterless layers included.
  if (w.has("encoder.layers.0.weight")) {
    const auto& wd = cfg.encoder_block_out_channels;
    for (size_t i = 0; i < wd.size(); ++i) {
      const std::string p = "encoder.layers." + std::to_string(enc_.size());
      enc_.push_back(i == 0 ? conv(p, wd[0], cfg.in_channels, 1) : conv(p, wd[i], wd[i], 2));
      for (int64_t b = 0; b < cfg.num_encoder_blocks[i]; ++b)
        enc_.push_back(block("encoder.layers." + std::to_string(enc_.size()) + ".", wd[i]));
    }
    enc_.push_back(conv("encoder.layers." + std::to_string(enc_.size()), cfg.latent_channels, wd.back(), 1));
  }
  if (w.has("decoder.layers.0.weight")) {
    const auto& wd = cfg.decoder_block_out_channels;
    dec_.push_back(conv("decoder.layers.0", wd[0], cfg.latent_channels, 1));
    dec_.push_back(Layer{Layer::kAct, {}, {}, {}, {}});
    for (size_t i = 0; i < wd.size(); ++i) {
      const bool last = i + 1 == wd.size();
      for (int64_t b = 0; b < cfg.num_decoder_blocks[i]; ++b)
        dec_.push_back(block("decoder.layers." + std::to_string(dec_.size()) + ".", wd[i]));
      if (!last) dec_.push_back(Layer{Layer::kUpsample, {}, {}, {}, {}});
      dec_.push_back(
          conv("decoder.layers." + std::to_string(dec_.size()), last ? cfg.out_channels : wd[i], wd[i], 1));
    }
  }
  if (enc_.empty() && dec_.empty())
    fail(ErrorCode::kMissingComponent,
         "no TAESD weights (encoder.layers.* or decoder.layers.*) in " + w.describe());
}

void AutoencoderTiny::act_inplace(Tensor& x) const {
  if (silu_) return activate_inplace(x, Act::kSilu);
  float* p = x.data();
  for (int64_t i = 0, n = x.numel(); i < n; ++i) p[i] = std::max(p[i], 0.0f);
}

Tensor AutoencoderTiny::run(const std::vector<Layer>& layers, Tensor x) const {
  const int64_t f = cfg_.upsampling_scaling_factor;
  for (const Layer& l : layers) {
    switch (l.kind) {
      case Layer::kConv:
        x = l.conv.forward(x);
        break;
      case Layer::kAct:
        if (!x.sole_owner()) x = x.clone();
        act_inplace(x);
        break;
      case Layer::kUpsample:
        x = upsample_nearest(x, x.dim(1) * f, x.dim(2) * f);
        break;
      case Layer::kBlock: {
        Tensor h = l.c0.forward(x);
        act_inplace(h);
        h = l.c1.forward(h);
        act_inplace(h);
        Tensor residual = x.sole_owner() ? std::move(x) : x.clone();
        x = l.c2.forward(h, &residual);  // the identity skip, summed in place
        act_inplace(x);
        break;
      }
    }
  }
  return x;
}

Tensor AutoencoderTiny::clamp_latents(const Tensor& z) {
  Tensor o(z.shape());
  for (int64_t i = 0; i < z.numel(); ++i) o.data()[i] = std::tanh(z.data()[i] / 3.0f) * 3.0f;
  return o;
}

Tensor AutoencoderTiny::decode(const Tensor& latents) const {
  if (!has_decoder())
    fail(ErrorCode::kMissingComponent, "this TAESD has no decoder weights; use a folder with the decoder");
  if (latents.rank() != 4 || latents.dim(3) != cfg_.latent_channels)
    fail(ErrorCode::kShapeMismatch, "TAESD decode expects NHWC latents with " +
                                        std::to_string(cfg_.latent_channels) + " channels, got " +
                                        shape_str(latents.shape()));
  Tensor x = run(dec_, clamp_latents(latents));
  float* p = x.data();
  for (int64_t i = 0; i < x.numel(); ++i) p[i] = p[i] * 2.0f - 1.0f;  // [0,1] -> [-1,1] as diffusers returns
  return x;
}

Tensor AutoencoderTiny::encode(const Tensor& image) const {
  if (!has_encoder())
    fail(ErrorCode::kMissingComponent,
         "this TAESD has no encoder weights (decoder only, e.g. for previews); "
         "image-to-image needs the encoder too (taesd_encoder.safetensors)");
  if (image.rank() != 4 || image.dim(3) != cfg_.in_channels)
    fail(ErrorCode::kShapeMismatch, "TAESD encode expects NHWC images with " +
                                        std::to_string(cfg_.in_channels) + " channels, got " +
                                        shape_str(image.shape()));
  Tensor x(image.shape());
  for (int64_t i = 0; i < x.numel(); ++i) x.data()[i] = (image.data()[i] + 1.0f) / 2.0f;
  return run(enc_, std::move(x));
}

Tensor AutoencoderTiny::scale_latents(const Tensor& z) const {
  Tensor o(z.shape());
  const float m = 2.0f * cfg_.latent_magnitude;
  for (int64_t i = 0; i < z.numel(); ++i)
    o.data()[i] = std::clamp(z.data()[i] / m + cfg_.latent_shift, 0.0f, 1.0f);
  return o;
}

Tensor AutoencoderTiny::unscale_latents(const Tensor& s) const {
  Tensor o(s.shape());
  for (int64_t i = 0; i < s.numel(); ++i)
    o.data()[i] = (s.data()[i] - cfg_.latent_shift) * (2.0f * cfg_.latent_magnitude);
  return o;
}

int64_t AutoencoderTiny::scale() const {
  int64_t s = 1;
  for (size_t i = 1; i < cfg_.decoder_block_out_channels.size(); ++i) s *= cfg_.upsampling_scaling_factor;
  return s;
}

bool AutoencoderTiny::is_tiny_vae_folder(const std::string& dir) {
  try {
    if (!is_directory(dir)) return false;
    const std::string cfg = dir + "/config.json";
    if (path_exists(cfg))
      return read_json_file(cfg, "VAE").value("_class_name", std::string()) == "AutoencoderTiny";
    for (const auto& e : fs::directory_iterator(dir)) {
      const std::string f = e.path().filename().string();
      if (f.size() > 20 && f.compare(f.size() - 20, 20, "_decoder.safetensors") == 0) return true;
    }
  } catch (const std::exception&) {
  }
  return false;
}

std::unique_ptr<AutoencoderTiny> AutoencoderTiny::load_folder(const std::string& dir) {
  if (!is_directory(dir)) fail(ErrorCode::kFileNotFound, "TAESD folder '" + dir + "' does not exist");
  if (!path_exists(dir + "/config.json")) return load_original(dir);
  const TinyVaeConfig cfg = TinyVaeConfig::from_json_file(dir + "/config.json");
  return std::make_unique<AutoencoderTiny>(cfg, open_component_weights(dir, "vae"));
}

}  // namespace vg
