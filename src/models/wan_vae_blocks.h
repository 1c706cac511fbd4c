// Pieces of the Wan VAE (models/wan_vae.h): causal 3-D convolutions as sums
// of 2-D convolutions over time taps, with a per-convolution frame cache, and
// the blocks built from them. Activations are [T, H, W, C]: frames leading,
// NHWC within a frame. Names follow diffusers' autoencoder_kl_qwenimage.py.
#pragma once
#include <string>
#include <vector>

#include "backend/cpu/layers.h"
#include "io/weights.h"

namespace vg::wan {

// What one causal convolution remembers between chunks: its last input
// frames (at most 2; fewer at the start, the missing ones being zeros).
struct FrameCache {
  Tensor frames;         // [n, H, W, C], n <= 2; empty: nothing yet
  bool started = false;  // Resample: the first chunk has passed
};

// One pass over a video: a cache slot per causal convolution. `last`: no
// chunk follows, so nothing needs remembering (a single image keeps none).
struct Pass {
  std::vector<FrameCache> caches;
  bool last = true;
  bool first = true;  // the first chunk (Wan 2.2's DupUp3D drops frames there)
};

// An encoder or a decoder: one chunk of frames at a time, its causal
// convolutions' caches in the pass (slots() of them).
class Stage {
 public:
  virtual ~Stage() = default;
  virtual Tensor forward(const Tensor& x, Pass& pass) const = 0;
  virtual int slots() const = 0;
};

// Frames [begin, end) of x (a copy).
Tensor frames_of(const Tensor& x, int64_t begin, int64_t end);
// Frames stacked along the leading dim.
Tensor concat_frames(const std::vector<Tensor>& parts);

// diffusers' blend_v (axis 1) / blend_h (axis 2) on [T, H, W, C] tiles, in
// place: b's first e = min(extent, a's and b's size on axis) rows (columns)
// become a's last e ones * (1 - k/e) + b's * k/e, k = 0..e-1 (definition in
// models/wan_vae_tiling.cpp).
void blend_tiles(const Tensor& a, Tensor& b, int axis, int64_t extent);

// RMS_norm over channels: x / max(||x||, 1e-12) * sqrt(C) * gamma, then SiLU.
Tensor rms_norm(const Tensor& x, const Tensor& gamma, bool silu);

class CausalConv3d {
 public:
  CausalConv3d() = default;
  // weight [out, in, kt, ks, ks] (+ bias [out]); space padded by ks/2. With
  // a cache slot (slot >= 0) it is causal: kt-1 past frames before each chunk.
  CausalConv3d(const WeightStore& w, const std::string& name, int64_t out, int64_t in, int64_t kt, int64_t ks,
               int slot);
  // out[t] = bias + sum_k tap_k(P[t*stride + k]) over P = prefix ++ frames of
  // x; a null prefix entry is a zero frame (skipped).
  Tensor run(const std::vector<const float*>& prefix, const Tensor& x, int stride) const;
  // The causal convolution of a chunk, reading and updating its cache slot.
  Tensor forward(const Tensor& x, Pass& pass) const;
  int64_t out_channels() const { return out_; }

 private:
  std::vector<Conv2d> taps_;  // one 2-D convolution per time tap, no bias
  Tensor bias_;
  int64_t out_ = 0, kt_ = 1;
  int slot_ = -1;
};

// Residual block: RMS+SiLU, conv1, RMS+SiLU, conv2, + shortcut.
class ResidualBlock {
 public:
  ResidualBlock(const WeightStore& w, const std::string& p, int64_t in, int64_t out, int& slot);
  Tensor forward(const Tensor& x, Pass& pass) const;

 private:
  Tensor gamma1_, gamma2_;
  CausalConv3d conv1_, conv2_;
  Conv2d shortcut_;  // 1x1x1: a per-frame 1x1 convolution
};

// Single-head self-attention within each frame, + residual.
class AttentionBlock {
 public:
  AttentionBlock(const WeightStore& w, const std::string& p, int64_t dim);
  Tensor forward(const Tensor& x) const;

 private:
  Tensor gamma_;
  Linear q_, k_, v_, proj_;
};

enum class ResampleMode { kUp2d, kUp3d, kDown2d, kDown3d };

// Spatial x2 up (nearest + 3x3 conv to up_out channels, 0 = dim/2) or down
// (3x3 stride-2 conv);
// the 3-D modes add a time convolution (up: each frame but the very first
// becomes two; down: frames pair up after the first).
class Resample {
 public:
  Resample(const WeightStore& w, const std::string& p, int64_t dim, ResampleMode mode, int& slot,
           int64_t up_out = 0);
  Tensor forward(const Tensor& x, Pass& pass) const;

 private:
  ResampleMode mode_;
  Conv2d conv_;
  CausalConv3d time_conv_;
  int slot_ = -1;
  int64_t dim_ = 0;
};

}  // namespace vg::wan
