// The Wan 2.2 pieces of the Wan VAE (models/wan_vae.h, is_residual): 2x2
// patchify around the network, residual down/up blocks whose shortcuts
// rearrange space and time into channels (AvgDown3D) and back (DupUp3D),
// and the encoder / decoder built from them. Layout as in wan_vae_blocks.h:
// [T, H, W, C]. Names follow diffusers' autoencoder_kl_wan.py.
#pragma once
#include <string>
#include <vector>

#include "models/wan_vae.h"
#include "models/wan_vae_blocks.h"

namespace vg::wan {

// [T, H, W, C] -> [T, H/p, W/p, C*p*p], channel c*p*p + px*p + py (x offset
// before y offset, as diffusers' patchify); unpatchify is its inverse.
Tensor patchify(const Tensor& x, int64_t p);
Tensor unpatchify(const Tensor& x, int64_t p);

// AvgDown3D: zero frames in front up to a multiple of ft, each (ft, fs, fs)
// cell folded into channels (order c, t, y, x), then the mean of each run of
// C*ft*fs*fs/out consecutive channels -> [T/ft, H/fs, W/fs, out].
Tensor avg_down(const Tensor& x, int64_t out, int64_t ft, int64_t fs);
// DupUp3D: each channel repeated out*ft*fs*fs/C times, the channels unfolded
// into (out, t, y, x) cells -> [T*ft, H*fs, W*fs, out]; the first chunk
// drops its first ft-1 frames.
Tensor dup_up(const Tensor& x, int64_t out, int64_t ft, int64_t fs, bool first_chunk);

// Residual blocks, then an optional downsampler, + avg_down(input).
class ResidualDownBlock {
 public:
  ResidualDownBlock(const WeightStore& w, const std::string& p, int64_t in, int64_t out, int64_t num_res,
                    bool down_t, bool down_s, int& slot);
  Tensor forward(const Tensor& x, Pass& pass) const;

 private:
  std::vector<ResidualBlock> resnets_;
  std::vector<Resample> downsampler_;  // none at the last level
  int64_t out_, ft_, fs_;
};

// num_res + 1 residual blocks, then an optional upsampler (to `out`
// channels), + dup_up(input) when it upsamples.
class ResidualUpBlock {
 public:
  ResidualUpBlock(const WeightStore& w, const std::string& p, int64_t in, int64_t out, int64_t num_res,
                  bool up_t, bool up_s, int& slot);
  Tensor forward(const Tensor& x, Pass& pass) const;

 private:
  std::vector<ResidualBlock> resnets_;
  std::vector<Resample> upsampler_;  // none at the last level
  int64_t out_, ft_, fs_;
};

// Residual block, attention, residual block.
class MidBlock {
 public:
  MidBlock(const WeightStore& w, const std::string& p, int64_t dim, int& slot);
  Tensor forward(const Tensor& x, Pass& pass) const;

 private:
  std::vector<ResidualBlock> res_;
  AttentionBlock attn_;
};

// Patchified chunk [T, H, W, in_channels] -> [T', H/8, W/8, 2 z_dim].
class ResidualEncoder : public Stage {
 public:
  ResidualEncoder(const WanVaeConfig& cfg, const WeightStore& w);
  Tensor forward(const Tensor& x, Pass& pass) const override;
  int slots() const override { return slots_; }

 private:
  int slots_ = 0;
  CausalConv3d conv_in_, conv_out_;
  std::vector<ResidualDownBlock> down_;
  std::vector<MidBlock> mid_;
  Tensor norm_out_;
};

// One latent frame [1, h, w, z_dim] -> its patchified frames
// [1 or 4, 8h, 8w, out_channels] (pass.first: the first chunk).
class ResidualDecoder : public Stage {
 public:
  ResidualDecoder(const WanVaeConfig& cfg, const WeightStore& w);
  Tensor forward(const Tensor& z, Pass& pass) const override;
  int slots() const override { return slots_; }

 private:
  int slots_ = 0;
  CausalConv3d conv_in_, conv_out_;
  std::vector<MidBlock> mid_;
  std::vector<ResidualUpBlock> up_;
  Tensor norm_out_;
};

// The published Wan 2.2 latent statistics (48 channels), for a VAE file
// without its config.json.
const std::vector<float>& wan22_latents_mean();
const std::vector<float>& wan22_latents_std();

}  // namespace vg::wan
