#include "models/unet.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <optional>

#include "core/error.h"
#include "models/config_util.h"

namespace vg {

UNetConfig UNetConfig::from_json_file(const std::string& path) { return from_json(read_json_file(path, "UNet"), path); }

UNetConfig UNetConfig::from_json(const nlohmann::json& j, const std::string& path) {
  UNetConfig c;
  try {
    if (j.contains("addition_embed_type") && !j["addition_embed_type"].is_null()) {
      if (j["addition_embed_type"] != "text_time")
        fail(ErrorCode::kUnsupportedModel, "this UNet uses addition_embed_type " + j["addition_embed_type"].dump() +
                                               "; only SDXL's \"text_time\" is supported");
      c.addition_time_embed_dim = j.value("addition_time_embed_dim", int64_t{256});
      c.projection_class_embeddings_input_dim = j.value("projection_class_embeddings_input_dim", int64_t{2816});
      if (c.addition_time_embed_dim <= 0 || c.addition_time_embed_dim % 2 || c.projection_class_embeddings_input_dim <= 0)
        fail(ErrorCode::kCorruptFile, "'" + path + "': addition_time_embed_dim must be even and positive");
    }
    if (j.contains("time_cond_proj_dim") && !j["time_cond_proj_dim"].is_null())
      fail(ErrorCode::kUnsupportedModel, "UNets with time_cond_proj_dim (LCM-distilled) are not supported yet");
    if (j.contains("class_embed_type") && !j["class_embed_type"].is_null())
      fail(ErrorCode::kUnsupportedModel, "UNets with class embeddings (e.g. upscalers, unCLIP) are not supported yet");
    c.in_channels = j.value("in_channels", c.in_channels);
    c.out_channels = j.value("out_channels", c.out_channels);
    c.block_out_channels = j.value("block_out_channels", c.block_out_channels);
    c.down_block_types = j.value("down_block_types", std::vector<std::string>{
        "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"});
    c.up_block_types = j.value("up_block_types", std::vector<std::string>{
        "UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"});
    if (j.contains("mid_block_type") && j["mid_block_type"].is_string())
      c.mid_block_type = j["mid_block_type"].get<std::string>();
    const size_t n = c.block_out_channels.size();
    if (n == 0 || c.down_block_types.size() != n || c.up_block_types.size() != n)
      fail(ErrorCode::kCorruptFile, "'" + path + "': block_out_channels, down_block_types and up_block_types must have the same length");
    c.layers_per_block = int_or_list(j, "layers_per_block", n, 2);
    auto head_dim = int_or_list(j, "attention_head_dim", n, 8);
    // diffusers: num_attention_heads defaults to attention_head_dim (a misnomer kept for SD1/2).
    c.num_heads = (j.contains("num_attention_heads") && !j["num_attention_heads"].is_null())
                      ? int_or_list(j, "num_attention_heads", n, 8) : head_dim;
    c.cross_attention_dim = int_or_list(j, "cross_attention_dim", n, 1280);
    c.transformer_layers = int_or_list(j, "transformer_layers_per_block", n, 1);
    c.use_linear_projection = j.value("use_linear_projection", false);
    c.flip_sin_to_cos = j.value("flip_sin_to_cos", true);
    c.freq_shift = j.value("freq_shift", 0.0f);
    c.norm_num_groups = j.value("norm_num_groups", 32);
    c.norm_eps = j.value("norm_eps", 1e-5f);
    c.sample_size = j.value("sample_size", int64_t{64});
    if (j.value("time_embedding_type", std::string("positional")) != "positional")
      fail(ErrorCode::kUnsupportedModel, "only positional time embeddings are supported");
  } catch (const nlohmann::json::exception& e) {
    fail(ErrorCode::kCorruptFile, "'" + path + "' has a field of the wrong type: " + e.what());
  }
  for (auto& t : c.down_block_types)
    if (t != "DownBlock2D" && t != "CrossAttnDownBlock2D")
      fail(ErrorCode::kUnsupportedModel, "UNet down block type '" + t + "' is not supported");
  for (auto& t : c.up_block_types)
    if (t != "UpBlock2D" && t != "CrossAttnUpBlock2D")
      fail(ErrorCode::kUnsupportedModel, "UNet up block type '" + t + "' is not supported");
  if (c.mid_block_type != "UNetMidBlock2DCrossAttn")
    fail(ErrorCode::kUnsupportedModel, "UNet mid block '" + c.mid_block_type + "' is not supported");
  for (size_t i = 0; i < c.block_out_channels.size(); ++i)
    if (c.num_heads[i] <= 0 || c.block_out_channels[i] % c.num_heads[i])
      fail(ErrorCode::kCorruptFile, "'" + path + "': block channels are not divisible by the head count");
  return c;
}

UNet::UNet(const UNetConfig& cfg, const WeightStore& w) : cfg_(cfg) {
  const auto& boc = cfg.block_out_channels;
  const size_t n = boc.size();
  const int g = cfg.norm_num_groups;
  const float eps = cfg.norm_eps;
  const int64_t temb = boc[0] * 4;
  conv_in_ = load_conv(w, "conv_in", boc[0], cfg.in_channels, 3, 1, 1, 1);
  time_1_ = load_linear(w, "time_embedding.linear_1", temb, boc[0]);
  time_2_ = load_linear(w, "time_embedding.linear_2", temb, temb);
  if (cfg.has_text_time()) {
    add_1_ = load_linear(w, "add_embedding.linear_1", temb, cfg.projection_class_embeddings_input_dim);
    add_2_ = load_linear(w, "add_embedding.linear_2", temb, temb);
  }
  auto make_attn = [&](const std::string& p, int64_t ch, size_t bi) {
    int heads = static_cast<int>(cfg.num_heads[bi]);
    return SpatialTransformer(w, p, ch, heads, ch / heads, cfg.cross_attention_dim[bi],
                              static_cast<int>(cfg.transformer_layers[bi]),
                              cfg.use_linear_projection, g);
  };
  int64_t out_ch = boc[0];
  for (size_t i = 0; i < n; ++i) {
    int64_t in_ch = out_ch;
    out_ch = boc[i];
    Stage s;
    const std::string p = "down_blocks." + std::to_string(i) + ".";
    for (int64_t j = 0; j < cfg.layers_per_block[i]; ++j) {
      s.resnets.emplace_back(w, p + "resnets." + std::to_string(j) + ".", j == 0 ? in_ch : out_ch,
                             out_ch, temb, g, eps);
      if (cfg.down_block_types[i] == "CrossAttnDownBlock2D")
        s.attns.push_back(make_attn(p + "attentions." + std::to_string(j) + ".", out_ch, i));
    }
    if (i + 1 < n) s.resample = load_conv(w, p + "downsamplers.0.conv", out_ch, out_ch, 3, 2, 1, 1);
    down_.push_back(std::move(s));
  }
  mid_.resnets.emplace_back(w, "mid_block.resnets.0.", boc[n - 1], boc[n - 1], temb, g, eps);
  mid_.attns.push_back(make_attn("mid_block.attentions.0.", boc[n - 1], n - 1));
  mid_.resnets.emplace_back(w, "mid_block.resnets.1.", boc[n - 1], boc[n - 1], temb, g, eps);
  int64_t prev_out = boc[n - 1];
  for (size_t i = 0; i < n; ++i) {
    const size_t bi = n - 1 - i;  // matching down block
    out_ch = boc[bi];
    const int64_t in_ch = boc[i + 1 < n ? bi - 1 : 0];
    const int64_t layers = cfg.layers_per_block[bi] + 1;
    Stage s;
    const std::string p = "up_blocks." + std::to_string(i) + ".";
    for (int64_t j = 0; j < layers; ++j) {
      const int64_t skip = (j == layers - 1) ? in_ch : out_ch;
      const int64_t rin = (j == 0 ? prev_out : out_ch) + skip;
      s.resnets.emplace_back(w, p + "resnets." + std::to_string(j) + ".", rin, out_ch, temb, g, eps);
      if (cfg.up_block_types[i] == "CrossAttnUpBlock2D")
        s.attns.push_back(make_attn(p + "attentions." + std::to_string(j) + ".", out_ch, bi));
    }
    if (i + 1 < n) s.resample = load_conv(w, p + "upsamplers.0.conv", out_ch, out_ch, 3, 1, 1, 1);
    prev_out = out_ch;
    up_.push_back(std::move(s));
  }
  norm_out_.load(w, "conv_norm_out", boc[0], g, eps);
  conv_out_ = load_conv(w, "conv_out", cfg.out_channels, boc[0], 3, 1, 1, 1);
}

int64_t UNet::size_multiple() const { return int64_t{1} << (cfg_.block_out_channels.size() - 1); }


Tensor UNet::added_embedding(const AddedCond& a, Tensor* time_id_proj) const {
  const int64_t b = a.text_embeds.dim(0), n = a.time_ids.dim(-1), d = cfg_.addition_time_embed_dim;
  const int64_t p = a.text_embeds.dim(-1);
  if (a.time_ids.dim(0) != b || p + n * d != cfg_.projection_class_embeddings_input_dim)
    fail(ErrorCode::kShapeMismatch, "UNet added conditioning: text_embeds " + shape_str(a.text_embeds.shape()) +
                                        " and time_ids " + shape_str(a.time_ids.shape()) + " do not make the " +
                                        std::to_string(cfg_.projection_class_embeddings_input_dim) +
                                        " inputs this UNet's add_embedding takes (base vs refiner model?)");
  // time_proj of every id with flip_sin_to_cos/freq_shift of the UNet, as diffusers' add_time_proj
  Tensor tp = timestep_sinusoid(a.time_ids.data(), b * n, d, cfg_.flip_sin_to_cos, cfg_.freq_shift);
  if (time_id_proj) *time_id_proj = tp;
  Tensor in({b, p + n * d});
  for (int64_t i = 0; i < b; ++i) {
    std::copy_n(a.text_embeds.data() + i * p, p, in.data() + i * (p + n * d));
    std::copy_n(tp.data() + i * n * d, n * d, in.data() + i * (p + n * d) + p);
  }
  Tensor h = add_1_.forward(in);
  activate_inplace(h, Act::kSilu);
  return add_2_.forward(h);
}

Tensor UNet::time_proj(const std::vector<float>& ts, int64_t batch) const {
  std::vector<float> values(static_cast<size_t>(batch));
  for (int64_t b = 0; b < batch; ++b) values[b] = ts.size() == 1 ? ts[0] : ts[b];
  return timestep_sinusoid(values.data(), batch, cfg_.block_out_channels[0], cfg_.flip_sin_to_cos, cfg_.freq_shift);
}

Tensor UNet::time_embedding(const Tensor& proj) const {
  Tensor h = time_1_.forward(proj);
  activate_inplace(h, Act::kSilu);
  return time_2_.forward(h);
}

Tensor UNet::forward(const Tensor& sample, const std::vector<float>& ts, const Tensor& ctx, const AddedCond& added) const {
  if (cfg_.has_text_time() && added.empty())
    fail(ErrorCode::kInvalidArgument, "this UNet (SDXL) needs pooled text embeds and time ids");
  std::vector<int64_t> key = sample.shape();
  key.insert(key.end(), ctx.shape().begin(), ctx.shape().end());
  key.push_back(static_cast<int64_t>(ts.size()));
  if (!added.empty()) key.push_back(added.time_ids.dim(-1));
  return planned_.run(key, [&] { return forward_pass(sample, ts, ctx, added); });
}

Tensor UNet::forward_pass(const Tensor& sample, const std::vector<float>& ts, const Tensor& ctx,
                          const AddedCond& added) const {
  const int64_t b = sample.dim(0);
  if (sample.rank() != 4 || sample.dim(3) != cfg_.in_channels)
    fail(ErrorCode::kShapeMismatch, "UNet expects " + std::to_string(cfg_.in_channels) +
                                        " input channels, got sample " + shape_str(sample.shape()));
  // Sizes that do not halve evenly are fine: each up block upsamples to its skip's size (diffusers' upsample_size).
  if (ts.size() != 1 && static_cast<int64_t>(ts.size()) != b)
    fail(ErrorCode::kInternal, "UNet: timesteps must have 1 or batch entries");
  if (ctx.dim(0) != b) fail(ErrorCode::kInternal, "UNet: context batch mismatch");
  Tensor temb = time_embedding(time_proj(ts, b));
  if (cfg_.has_text_time()) add_inplace(temb, added_embedding(added));
  activate_inplace(temb, Act::kSilu);  // every resnet applies SiLU before its projection
  Tensor h = conv_in_.forward(sample);
  std::vector<Tensor> skips{h};
  // In torch a transformer block's output is contiguous NCHW, and so is a
  // resnet's with a shortcut conv (diffusers runs it on input.contiguous()
  // and adds it first), so GroupNorm leaves torch's channels-last formula
  // after the first of either (SD1: the first transformer; SDXL, whose level 0
  // has no attention: the first resnet that changes the width).
  std::optional<TorchChannelsLastGroupNorm> contiguous_from_here;
  for (const Stage& s : down_) {
    for (size_t j = 0; j < s.resnets.size(); ++j) {
      const int64_t in_width = h.dim(3);
      h = s.resnets[j].forward(std::move(h), temb);
      if (h.dim(3) != in_width && !contiguous_from_here) contiguous_from_here.emplace(false);
      if (!s.attns.empty()) {
        h = s.attns[j].forward(h, ctx);
        if (!contiguous_from_here) contiguous_from_here.emplace(false);
      }
      skips.push_back(h);
    }
    if (s.resample) {
      h = s.resample->forward(h);
      skips.push_back(h);
    }
  }
  if (!contiguous_from_here) contiguous_from_here.emplace(false);  // up blocks concat skips: contiguous
  h = mid_.resnets[0].forward(std::move(h), temb);
  h = mid_.attns[0].forward(h, ctx);
  h = mid_.resnets[1].forward(std::move(h), temb);
  for (const Stage& s : up_) {
    for (size_t j = 0; j < s.resnets.size(); ++j) {
      Tensor skip = skips.back();
      skips.pop_back();
      h = s.resnets[j].forward(concat_channels(h, skip), temb);
      if (!s.attns.empty()) h = s.attns[j].forward(h, ctx);
    }
    if (s.resample) {
      // Upsample to the next skip's size (2x unless the input was odd-sized).
      const Tensor& next = skips.back();
      h = s.resample->forward(upsample_nearest(h, next.dim(1), next.dim(2)));
    }
  }
  return conv_out_.forward(norm_out_(h, true));
}

double UNet::flops(int64_t b, int64_t h, int64_t w, int64_t s) const {
  double f = conv_in_.flops(b, h, w);
  int64_t ch = h, cw = w;
  for (const Stage& st : down_) {
    for (size_t j = 0; j < st.resnets.size(); ++j) {
      f += st.resnets[j].flops(b, ch, cw);
      if (!st.attns.empty()) f += st.attns[j].flops(b, ch, cw, s);
    }
    if (st.resample) {
      f += st.resample->flops(b, ch, cw);
      ch = (ch + 1) / 2;
      cw = (cw + 1) / 2;
    }
  }
  f += mid_.resnets[0].flops(b, ch, cw) * 2 + mid_.attns[0].flops(b, ch, cw, s);
  for (const Stage& st : up_) {
    for (size_t j = 0; j < st.resnets.size(); ++j) {
      f += st.resnets[j].flops(b, ch, cw);
      if (!st.attns.empty()) f += st.attns[j].flops(b, ch, cw, s);
    }
    if (st.resample) {
      ch *= 2;
      cw *= 2;
      f += st.resample->flops(b, ch, cw);
    }
  }
  return f + conv_out_.flops(b, h, w);
}

}  // namespace vg
