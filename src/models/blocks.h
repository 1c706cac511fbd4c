// Building blocks shared by the UNet and the VAE (diffusers naming).
#pragma once
#include <string>
#include <vector>

#include "backend/cpu/layers.h"
#include "backend/cpu/ops.h"
#include "io/weights.h"

namespace vg {

// Loads a conv ([O,I,k,k] + optional bias) from `name`.weight/.bias.
Conv2d load_conv(const WeightStore& w, const std::string& name, int64_t out, int64_t in, int k,
                 int stride, int pad_l, int pad_r);
Linear load_linear(const WeightStore& w, const std::string& name, int64_t out, int64_t in,
                   bool bias = true);
// Loads `weight_name` as load_conv/load_linear do (float32, or bf16 for a bf16
// layer); the original-weight source of a layer's patch slot.
LayerPatch::Source weight_source(const WeightStore& w, const std::string& weight_name, const Shape& shape);

// diffusers get_timestep_embedding of `n` values: [n, dim] (float32 arithmetic
// in diffusers' order; flip = flip_sin_to_cos, shift = downscale_freq_shift,
// scale multiplies value*freq, as Timesteps(scale=1000) of Qwen-Image does).
Tensor timestep_sinusoid(const float* values, int64_t n, int64_t dim, bool flip, float shift,
                         float scale = 1.0f);

struct GroupNormParams {
  Tensor weight, bias;
  int groups = 32;
  float eps = 1e-5f;
  void load(const WeightStore& w, const std::string& name, int64_t channels, int g, float e);
  Tensor operator()(const Tensor& x, bool silu) const {
    return group_norm(x, groups, weight, bias, eps, silu);
  }
};

// diffusers ResnetBlock2D (resnet_time_scale_shift "default").
class ResnetBlock {
 public:
  ResnetBlock(const WeightStore& w, const std::string& p, int64_t in, int64_t out,
              int64_t temb_dim, int groups, float eps);
  // temb_silu: silu(time embedding) [B, temb_dim] or empty.
  // x by value: when the caller moves its only reference in, the residual is
  // summed into x's buffer instead of a copy.
  Tensor forward(Tensor x, const Tensor& temb_silu) const;
  double flops(int64_t n, int64_t h, int64_t w) const;

 private:
  GroupNormParams norm1_, norm2_;
  Conv2d conv1_, conv2_, shortcut_;
  Linear temb_proj_;
};

// diffusers Attention with separate to_q/to_k/to_v and to_out.0.
class AttentionLayer {
 public:
  AttentionLayer() = default;
  AttentionLayer(const WeightStore& w, const std::string& p, int64_t query_dim,
                 int64_t context_dim, int heads, int64_t head_dim);
  // x: [B,T,C]; context: [B,S,Cc] or empty for self-attention.
  Tensor forward(const Tensor& x, const Tensor& context) const;
  int heads() const { return heads_; }

 private:
  Linear q_, k_, v_, out_;
  int heads_ = 1;
};

// Transformer2DModel with BasicTransformerBlocks (self-attn, cross-attn, GEGLU).
class SpatialTransformer {
 public:
  SpatialTransformer(const WeightStore& w, const std::string& p, int64_t channels, int heads,
                     int64_t head_dim, int64_t context_dim, int layers, bool linear_proj,
                     int groups);
  Tensor forward(const Tensor& x, const Tensor& context) const;  // x NHWC
  double flops(int64_t n, int64_t h, int64_t w, int64_t ctx_len) const;

 private:
  struct Block {
    Tensor n1w, n1b, n2w, n2b, n3w, n3b;
    AttentionLayer attn1, attn2;
    Linear ff_in, ff_out;
  };
  GroupNormParams norm_;
  Linear proj_in_, proj_out_;
  std::vector<Block> blocks_;
  int64_t channels_, context_dim_, inner_;
};

// VAE mid-block attention: GroupNorm, single-head attention, residual.
class VaeAttention {
 public:
  VaeAttention(const WeightStore& w, const std::string& p, int64_t channels, int groups);
  Tensor forward(const Tensor& x) const;  // NHWC

 private:
  GroupNormParams norm_;
  Linear q_, k_, v_, out_;
};

}  // namespace vg
