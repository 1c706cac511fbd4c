// The original Wan VAE layouts under diffusers' names, as diffusers'
// convert_wan_to_diffusers.py maps them. Wan 2.1 (Wan2.1_VAE.pth, ComfyUI's
// wan_2.1_vae and qwen_image_vae files): flat `encoder.downsamples.N` keep
// their index, the decoder's flat `upsamples.N` group into levels of
// (num_res_blocks + 1) residual blocks and one resampler. Wan 2.2
// (Wan2.2_VAE.pth, convert_vae_22): levels are nested,
// `encoder.downsamples.I.downsamples.J` = residual block J, or the
// downsampler when J = num_res_blocks; `decoder.upsamples.I.upsamples.J` =
// residual block J, or the upsampler when J = num_res_blocks + 1.
#include <string>

#include "core/error.h"
#include "models/wan_vae.h"

namespace vg {

namespace {

bool starts_with(const std::string& s, const std::string& p) { return s.compare(0, p.size(), p) == 0; }

// A residual block's inner names: residual.{0,2,3,6} = norm1, conv1, norm2, conv2.
std::string residual_part(const std::string& rest) {
  static const std::pair<const char*, const char*> kMap[] = {{"residual.0.", "norm1."},
                                                             {"residual.2.", "conv1."},
                                                             {"residual.3.", "norm2."},
                                                             {"residual.6.", "conv2."},
                                                             {"shortcut.", "conv_shortcut."}};
  for (const auto& [from, to] : kMap)
    if (starts_with(rest, from)) return to + rest.substr(std::char_traits<char>::length(from));
  return rest;  // resample.1.*, time_conv.*, attention norm/to_qkv/proj: unchanged
}

// "N.rest" -> {N, "rest"}; N = -1 when there is no index.
std::pair<int64_t, std::string> split_index(const std::string& s) {
  const size_t dot = s.find('.');
  if (dot == std::string::npos || dot == 0 || s.find_first_not_of("0123456789") != dot) return {-1, s};
  return {std::stoll(s.substr(0, dot)), s.substr(dot + 1)};
}

}  // namespace

std::string wan_vae_diffusers_name(const std::string& name, int64_t num_res_blocks) {
  if (starts_with(name, "conv1.")) return "quant_conv." + name.substr(6);
  if (starts_with(name, "conv2.")) return "post_quant_conv." + name.substr(6);
  for (const std::string side : {"encoder.", "decoder."}) {
    if (!starts_with(name, side)) continue;
    const std::string rest = name.substr(side.size());
    if (starts_with(rest, "conv1.")) return side + "conv_in." + rest.substr(6);
    if (starts_with(rest, "head.0.")) return side + "norm_out." + rest.substr(7);
    if (starts_with(rest, "head.2.")) return side + "conv_out." + rest.substr(7);
    if (starts_with(rest, "middle.")) {
      const auto [i, inner] = split_index(rest.substr(7));
      if (i == 1) return side + "mid_block.attentions.0." + inner;
      if (i == 0 || i == 2)
        return side + "mid_block.resnets." + std::to_string(i / 2) + "." + residual_part(inner);
      return "";
    }
    if (side == "encoder." && starts_with(rest, "downsamples.")) {
      const auto [i, inner] = split_index(rest.substr(12));
      if (i < 0) return "";
      const std::string block = side + "down_blocks." + std::to_string(i) + ".";
      if (starts_with(inner, "downsamples.")) {  // Wan 2.2
        const auto [j, leaf] = split_index(inner.substr(12));
        if (j < 0) return "";
        return j < num_res_blocks ? block + "resnets." + std::to_string(j) + "." + residual_part(leaf)
                                  : block + "downsampler." + leaf;
      }
      return block + residual_part(inner);
    }
    if (side == "decoder." && starts_with(rest, "upsamples.")) {
      const auto [i, inner] = split_index(rest.substr(10));
      if (i >= 0 && starts_with(inner, "upsamples.")) {  // Wan 2.2
        const auto [j, leaf] = split_index(inner.substr(10));
        if (j < 0) return "";
        const std::string block = side + "up_blocks." + std::to_string(i) + ".";
        return j <= num_res_blocks ? block + "resnets." + std::to_string(j) + "." + residual_part(leaf)
                                   : block + "upsampler." + leaf;
      }
      if (i < 0 || num_res_blocks < 1) return "";
      const int64_t per_level = num_res_blocks + 2, level = i / per_level, pos = i % per_level;
      const std::string block = side + "up_blocks." + std::to_string(level) + ".";
      if (pos <= num_res_blocks) return block + "resnets." + std::to_string(pos) + "." + residual_part(inner);
      return block + "upsamplers.0." + inner;
    }
  }
  return "";
}

namespace {

// Wan 2.2 nests the decoder's levels: decoder.upsamples.I.upsamples.J.
bool is_wan22_original(const WeightStore& w) {
  return w.has("decoder.upsamples.0.upsamples.0.residual.0.gamma");
}

WeightStore with_diffusers_names(const WeightStore& w, int64_t num_res_blocks) {
  WeightStore out = w;
  for (const auto& [name, info] : w.entries()) {
    const std::string mapped = wan_vae_diffusers_name(name, num_res_blocks);
    if (!mapped.empty() && !out.has(mapped)) out.add_alias(mapped, info);
  }
  return out;
}

}  // namespace

bool is_wan_vae_original(const WeightStore& w) {
  return w.has("decoder.middle.0.residual.0.gamma") &&
         (w.has("decoder.upsamples.0.residual.0.gamma") || is_wan22_original(w)) &&
         w.has("decoder.head.2.weight");
}

WeightStore wan_vae_weights_from_original(const WeightStore& w) {
  if (!is_wan_vae_original(w))
    fail(ErrorCode::kUnsupportedModel,
         w.describe() +
             " is not an original-layout Wan VAE (no decoder.middle.0.residual / "
             "decoder.upsamples.0[.upsamples.0].residual / decoder.head tensors)");
  if (is_wan22_original(w)) {  // level 0 holds num_res_blocks + 1 residual blocks
    int64_t blocks = 0;
    while (w.has("decoder.upsamples.0.upsamples." + std::to_string(blocks) + ".residual.0.gamma")) ++blocks;
    if (blocks < 2)
      fail(ErrorCode::kCorruptFile, w.describe() + ": the Wan 2.2 VAE decoder's first level has " +
                                        std::to_string(blocks) + " residual blocks (needs at least 2)");
    return with_diffusers_names(w, blocks - 1);
  }
  // The first resampler follows level 0's num_res_blocks + 1 residual blocks.
  int64_t first_resample = 0;
  while (first_resample < 64 &&
         !w.has("decoder.upsamples." + std::to_string(first_resample) + ".resample.1.weight"))
    ++first_resample;
  if (first_resample == 64) {  // one level only: no resampler; count its residual blocks
    first_resample = 0;
    while (w.has("decoder.upsamples." + std::to_string(first_resample) + ".residual.0.gamma"))
      ++first_resample;
  }
  const int64_t num_res_blocks = first_resample - 1;
  if (num_res_blocks < 1)
    fail(ErrorCode::kCorruptFile,
         w.describe() + ": the Wan VAE decoder has no residual blocks before its first resampler");
  return with_diffusers_names(w, num_res_blocks);
}

}  // namespace vg
