// The Wan 2.1-style causal 3-D VAE (Qwen-Image's) against diffusers'
// AutoencoderKLQwenImage on the qwenimage-tiny fixture.
#include "models/wan_vae.h"

#include <cstdio>

#include "io/weights.h"
#include "test_util.h"

namespace vg {
namespace {

std::string vae_dir() { return test::fixtures() + "/qwenimage-tiny/models/qwenimage-tiny/vae"; }
std::string ref_file() { return test::fixtures() + "/qwenimage-tiny/vae/vae.safetensors"; }

// diffusers' [1, C, T, H, W] <-> our [T, H, W, C]
Tensor to_thwc(const Tensor& x) {
  const int64_t c = x.dim(1), t = x.dim(2), hw = x.dim(3) * x.dim(4);
  Tensor o({t, x.dim(3), x.dim(4), c});
  for (int64_t ci = 0; ci < c; ++ci)
    for (int64_t ti = 0; ti < t; ++ti)
      for (int64_t p = 0; p < hw; ++p) o.data()[(ti * hw + p) * c + ci] = x.data()[(ci * t + ti) * hw + p];
  return o;
}
Tensor to_ncthw(const Tensor& x) {
  const int64_t t = x.dim(0), hw = x.dim(1) * x.dim(2), c = x.dim(3);
  Tensor o({1, c, t, x.dim(1), x.dim(2)});
  for (int64_t ci = 0; ci < c; ++ci)
    for (int64_t ti = 0; ti < t; ++ti)
      for (int64_t p = 0; p < hw; ++p) o.data()[(ci * t + ti) * hw + p] = x.data()[(ti * hw + p) * c + ci];
  return o;
}
Tensor frames(const Tensor& x, int64_t begin, int64_t end) {
  Shape s = x.shape();
  s[0] = end - begin;
  return Tensor::from(s, x.data() + begin * (x.numel() / x.dim(0)));
}

class WanVaeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    weights_ = new WeightStore(open_component_weights(vae_dir(), "vae"));
    vae_ = new WanVae(WanVaeConfig::from_json_file(vae_dir() + "/config.json"), *weights_);
    ref_ = new std::shared_ptr<SafetensorsFile>(SafetensorsFile::open(ref_file()));
  }
  static void TearDownTestSuite() {
    delete vae_;
    delete weights_;
    delete ref_;
  }
  static Tensor ref(const std::string& name) { return (*ref_)->load_f32(name); }
  // decode `group`.decoder_input and compare with `group`.image
  static double decode_error(const std::string& group) {
    const Tensor out = to_ncthw(vae_->decode(to_thwc(ref(group + ".decoder_input"))));
    const double e = test::rel_err(out, ref(group + ".image"));
    std::printf("%s: max rel error %.2e\n", group.c_str(), e);
    return e;
  }
  static WeightStore* weights_;
  static WanVae* vae_;
  static std::shared_ptr<SafetensorsFile>* ref_;
};
WeightStore* WanVaeTest::weights_ = nullptr;
WanVae* WanVaeTest::vae_ = nullptr;
std::shared_ptr<SafetensorsFile>* WanVaeTest::ref_ = nullptr;

TEST_F(WanVaeTest, DecodeMatchesDiffusers) { EXPECT_LE(decode_error("decode"), 1e-4); }

TEST_F(WanVaeTest, DecodeNonSquareMatchesDiffusers) { EXPECT_LE(decode_error("decode_nonsquare"), 1e-4); }

TEST_F(WanVaeTest, DecodeVideoTwoLatentFramesGivesFiveFrames) {
  const Tensor out = vae_->decode(to_thwc(ref("decode_video_2latent_frames.decoder_input")));
  EXPECT_EQ(out.shape(), (Shape{5, 32, 32, 3}));
  EXPECT_LE(decode_error("decode_video_2latent_frames"), 1e-4);
}

TEST_F(WanVaeTest, EncodeMatchesDiffusers) {
  const Posterior p = vae_->encode(to_thwc(ref("encode.image")));
  EXPECT_EQ(p.mean.shape(), (Shape{1, 8, 8, 16}));
  const Tensor mean = to_ncthw(p.mean), logvar = to_ncthw(p.logvar), std = to_ncthw(p.std);
  const double em = test::rel_err(mean, ref("encode.mean")), el = test::rel_err(logvar, ref("encode.logvar"));
  const double es = test::rel_err(std, ref("encode.std"));
  std::printf("encode: mean %.2e logvar %.2e std %.2e\n", em, el, es);
  EXPECT_LE(em, 1e-4);
  EXPECT_LE(el, 1e-4);
  EXPECT_LE(es, 1e-4);
  // moments = [mean | logvar] along channels (the fixture's logvar is inside the clamp range)
  const Tensor moments = ref("encode.moments");
  EXPECT_LE(test::max_abs_diff(moments.data(), mean.data(), mean.numel()),
            1e-4 * test::max_abs(mean.data(), mean.numel()));
  EXPECT_LE(test::max_abs_diff(moments.data() + mean.numel(), logvar.data(), logvar.numel()),
            1e-4 * test::max_abs(logvar.data(), logvar.numel()));
  // the pipeline's sample: mean + std * eps with the stored draw
  const Tensor eps = ref("encode.eps");
  Tensor sample(mean.shape());
  for (int64_t i = 0; i < sample.numel(); ++i)
    sample.data()[i] = mean.data()[i] + std.data()[i] * eps.data()[i];
  EXPECT_LE(test::rel_err(sample, ref("encode.sample")), 1e-4);
}

TEST_F(WanVaeTest, EncodeVideoFiveFramesMatchesDiffusers) {
  const Posterior p = vae_->encode(to_thwc(ref("encode_video_5frames.video")));
  EXPECT_EQ(p.mean.shape(), (Shape{2, 4, 4, 16}));
  const double em = test::rel_err(to_ncthw(p.mean), ref("encode_video_5frames.mean"));
  const double el = test::rel_err(to_ncthw(p.logvar), ref("encode_video_5frames.logvar"));
  std::printf("encode 5 frames: mean %.2e logvar %.2e\n", em, el);
  EXPECT_LE(em, 1e-4);
  EXPECT_LE(el, 1e-4);
}

// Causal and chunked: a longer video's first frames are exactly those of its
// prefix (9 frames = 3 chunks exercise caches carried over two chunk edges).
TEST_F(WanVaeTest, LongerVideosAreCausal) {
  const Tensor v5 = to_thwc(ref("encode_video_5frames.video"));
  Tensor v9({9, v5.dim(1), v5.dim(2), 3});
  std::copy_n(v5.data(), v5.numel(), v9.data());
  std::copy_n(v5.data() + v5.numel() / 5, 4 * v5.numel() / 5, v9.data() + v5.numel());  // frames 1..4 again
  const Posterior p5 = vae_->encode(v5), p9 = vae_->encode(v9);
  ASSERT_EQ(p9.mean.dim(0), 3);
  EXPECT_EQ(test::max_abs_diff(frames(p9.mean, 0, 2).data(), p5.mean.data(), p5.mean.numel()), 0.0);
  EXPECT_GT(test::max_abs_diff(frames(p9.mean, 2, 3).data(), frames(p9.mean, 1, 2).data(), 16 * 16), 1e-3);

  const Tensor d2 = vae_->decode(p5.mean), d3 = vae_->decode(p9.mean);
  ASSERT_EQ(d3.dim(0), 9);
  EXPECT_EQ(test::max_abs_diff(frames(d3, 0, 5).data(), d2.data(), d2.numel()), 0.0);
  EXPECT_THROW(vae_->encode(frames(v9, 0, 4)), VgException);  // not 1 + 4k frames
}

TEST_F(WanVaeTest, Bf16ComputeStaysClose) {
  WeightStore w = *weights_;
  w.set_compute_bf16(true);
  const WanVae vae(vae_->config(), w);
  const Tensor z = to_thwc(ref("decode_video_2latent_frames.decoder_input"));
  const double e = test::rel_err(to_ncthw(vae.decode(z)), ref("decode_video_2latent_frames.image"));
  const double ee = test::rel_err(to_ncthw(vae.encode(to_thwc(ref("encode_video_5frames.video"))).mean),
                                  ref("encode_video_5frames.mean"));
  std::printf("bf16: decode %.2e encode mean %.2e\n", e, ee);
  EXPECT_LE(e, 5e-2);
  EXPECT_LE(ee, 5e-2);
}

TEST(WanVae, ConfigFromJsonAndFromWeights) {
  const nlohmann::json j = nlohmann::json::parse(read_file(vae_dir() + "/config.json"));
  const WanVaeConfig c = WanVaeConfig::from_json_file(vae_dir() + "/config.json");
  EXPECT_EQ(c.base_dim, j["base_dim"].get<int64_t>());
  EXPECT_EQ(c.num_res_blocks, j["num_res_blocks"].get<int64_t>());
  EXPECT_EQ(c.dim_mult, j["dim_mult"].get<std::vector<int64_t>>());
  EXPECT_EQ(c.temperal_downsample, j["temperal_downsample"].get<std::vector<bool>>());
  EXPECT_EQ(c.latents_mean, j["latents_mean"].get<std::vector<float>>());
  EXPECT_EQ(c.latents_std, j["latents_std"].get<std::vector<float>>());
  EXPECT_EQ(c.spatial_scale(), 8);
  EXPECT_EQ(c.temporal_scale(), 4);

  const WanVaeConfig f = WanVaeConfig::from_weights(open_component_weights(vae_dir(), "vae"));
  EXPECT_EQ(f.base_dim, c.base_dim);
  EXPECT_EQ(f.z_dim, c.z_dim);
  EXPECT_EQ(f.num_res_blocks, c.num_res_blocks);
  EXPECT_EQ(f.dim_mult, c.dim_mult);
  EXPECT_EQ(f.temperal_downsample, c.temperal_downsample);

  EXPECT_FALSE(c.is_residual);
  EXPECT_EQ(c.patch_size, 1);
  EXPECT_FALSE(f.is_residual);
  EXPECT_EQ(f.patch_size, 1);
  EXPECT_EQ(f.decoder_dim(), c.decoder_dim());

  // Wan 2.2's form (residual blocks, patchified) is selected by its config
  // (tests/wan22_vae_test.cpp); malformed fields are corrupt files
  const WanVaeConfig w22 =
      WanVaeConfig::from_json_file(test::fixtures() + "/wan22-tiny/models/wan22-tiny-ti2v/vae/config.json");
  EXPECT_TRUE(w22.is_residual);
  EXPECT_EQ(w22.spatial_scale(), 16);
  nlohmann::json bad = j;
  bad["temperal_downsample"] = {true};
  EXPECT_EQ(test::code_of([&] { WanVaeConfig::from_json(bad, "x"); }), ErrorCode::kCorruptFile);
  bad = j;
  bad["dim_mult"] = "four";
  EXPECT_EQ(test::code_of([&] { WanVaeConfig::from_json(bad, "x"); }), ErrorCode::kCorruptFile);
}

// diffusers name -> original Wan 2.1 name (the inverse of diffusers' convert_vae).
std::string original_name(std::string n, int64_t r) {
  auto take = [&](const std::string& p) {
    if (n.rfind(p, 0) != 0) return false;
    n = n.substr(p.size());
    return true;
  };
  auto inner = [](const std::string& s) {
    for (auto [from, to] : {std::pair<std::string, std::string>{"norm1.", "residual.0."},
                            {"conv1.", "residual.2."},
                            {"norm2.", "residual.3."},
                            {"conv2.", "residual.6."},
                            {"conv_shortcut.", "shortcut."}})
      if (s.rfind(from, 0) == 0) return to + s.substr(from.size());
    return s;
  };
  if (take("quant_conv.")) return "conv1." + n;
  if (take("post_quant_conv.")) return "conv2." + n;
  const std::string side = n.substr(0, 8);
  n = n.substr(8);
  if (take("conv_in.")) return side + "conv1." + n;
  if (take("norm_out.")) return side + "head.0." + n;
  if (take("conv_out.")) return side + "head.2." + n;
  if (take("mid_block.attentions.0.")) return side + "middle.1." + n;
  if (take("mid_block.resnets."))
    return side + "middle." + std::to_string(2 * (n[0] - '0')) + "." + inner(n.substr(2));
  if (take("down_blocks.")) {
    const size_t dot = n.find('.');
    return side + "downsamples." + n.substr(0, dot + 1) + inner(n.substr(dot + 1));
  }
  if (take("up_blocks.")) {
    const int64_t level = n[0] - '0';
    n = n.substr(2);
    const int64_t base = level * (r + 2);
    if (take("upsamplers.0.")) return side + "upsamples." + std::to_string(base + r + 1) + "." + n;
    if (take("resnets."))
      return side + "upsamples." + std::to_string(base + (n[0] - '0')) + "." + inner(n.substr(2));
  }
  return "?" + n;
}

TEST(WanVae, OriginalLayoutMapsToDiffusersNames) {
  // pairs from diffusers' convert_wan_to_diffusers.py::convert_vae (num_res_blocks 2)
  EXPECT_EQ(wan_vae_diffusers_name("decoder.upsamples.4.shortcut.weight", 2),
            "decoder.up_blocks.1.resnets.0.conv_shortcut.weight");
  EXPECT_EQ(wan_vae_diffusers_name("decoder.upsamples.3.time_conv.bias", 2),
            "decoder.up_blocks.0.upsamplers.0.time_conv.bias");
  EXPECT_EQ(wan_vae_diffusers_name("decoder.upsamples.11.resample.1.weight", 2),
            "decoder.up_blocks.2.upsamplers.0.resample.1.weight");
  EXPECT_EQ(wan_vae_diffusers_name("decoder.upsamples.14.residual.0.gamma", 2),
            "decoder.up_blocks.3.resnets.2.norm1.gamma");
  EXPECT_EQ(wan_vae_diffusers_name("encoder.middle.2.residual.6.bias", 2),
            "encoder.mid_block.resnets.1.conv2.bias");
  EXPECT_EQ(wan_vae_diffusers_name("encoder.middle.1.to_qkv.weight", 2),
            "encoder.mid_block.attentions.0.to_qkv.weight");
  EXPECT_EQ(wan_vae_diffusers_name("encoder.downsamples.5.residual.3.gamma", 2),
            "encoder.down_blocks.5.norm2.gamma");
  EXPECT_EQ(wan_vae_diffusers_name("encoder.head.2.weight", 2), "encoder.conv_out.weight");
  EXPECT_EQ(wan_vae_diffusers_name("conv2.weight", 2), "post_quant_conv.weight");
  EXPECT_EQ(wan_vae_diffusers_name("model.diffusion_model.x", 2), "");

  // the fixture's tensors under original names only, mapped back: every name
  // returns to the same tensor, and the model computes the same numbers
  const WeightStore w = open_component_weights(vae_dir(), "vae");
  const int64_t r = WanVaeConfig::from_weights(w).num_res_blocks;
  WeightStore orig;
  for (const auto& [name, info] : w.entries()) orig.add_alias(original_name(name, r), info);
  EXPECT_FALSE(is_wan_vae_original(w));
  ASSERT_TRUE(is_wan_vae_original(orig));
  const WeightStore mapped = wan_vae_weights_from_original(orig);
  for (const auto& [name, info] : w.entries())
    EXPECT_EQ(mapped.find(name), info) << name << " <- " << original_name(name, r);
  const WanVaeConfig cfg = WanVaeConfig::from_weights(mapped);
  const auto ref = SafetensorsFile::open(ref_file());
  const Tensor z = to_thwc(ref->load_f32("decode.decoder_input"));
  EXPECT_EQ(test::rel_err(WanVae(cfg, mapped).decode(z), WanVae(cfg, w).decode(z)), 0.0);
  EXPECT_EQ(test::code_of([&] { wan_vae_weights_from_original(w); }), ErrorCode::kUnsupportedModel);
}

TEST(WanVae, MissingTensorIsAClearError) {
  const WeightStore w = open_component_weights(vae_dir(), "vae");
  WeightStore partial;
  const std::string gone = "decoder.up_blocks.1.resnets.0.conv1.weight";
  for (const auto& [name, info] : w.entries())
    if (name != gone) partial.add_alias(name, info);
  const WanVaeConfig cfg = WanVaeConfig::from_json_file(vae_dir() + "/config.json");
  try {
    WanVae vae(cfg, partial);
    FAIL() << "a missing tensor was accepted";
  } catch (const VgException& e) {
    EXPECT_EQ(e.code(), ErrorCode::kShapeMismatch);
    EXPECT_NE(std::string(e.what()).find(gone), std::string::npos) << e.what();
  }
  // a config that disagrees with the weights (wider base) names the tensor too
  WanVaeConfig wide = cfg;
  wide.base_dim *= 2;
  EXPECT_EQ(test::code_of([&] { WanVae vae(wide, w); }), ErrorCode::kShapeMismatch);
  // the decoder alone loads (text-to-image needs no encoder)
  WeightStore dec_only;
  for (const auto& [name, info] : w.entries())
    if (name.rfind("encoder.", 0) != 0 && name.rfind("quant_conv.", 0) != 0) dec_only.add_alias(name, info);
  const WanVae decoder(cfg, dec_only);
  EXPECT_FALSE(decoder.has_encoder());
  EXPECT_EQ(test::code_of([&] {
              decoder.encode(Tensor::zeros({1, 64, 64, 3}));
            }),
            ErrorCode::kMissingComponent);
}

}  // namespace
}  // namespace vg
