// The Wan 2.2 form of the Wan VAE (AutoencoderKLWan with is_residual and
// patch_size 2) against diffusers on the wan22-tiny fixture.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "io/safetensors.h"
#include "io/weights.h"
#include "models/blocks.h"
#include "models/wan22_vae_blocks.h"
#include "models/wan_vae.h"
#include "pipelines/dit_components.h"
#include "test_util.h"

namespace vg {
namespace {

std::string root() { return test::fixtures() + "/wan22-tiny"; }
std::string vae_dir() { return root() + "/models/wan22-tiny-ti2v/vae"; }
std::string single_file() { return root() + "/models/single_file/wan2.2_vae_tiny.safetensors"; }

// diffusers' [1, C, T, H, W] <-> our [T, H, W, C]
Tensor to_thwc(const Tensor& x) {
  const int64_t c = x.dim(1), t = x.dim(2), hw = x.dim(3) * x.dim(4);
  Tensor o({t, x.dim(3), x.dim(4), c});
  for (int64_t ci = 0; ci < c; ++ci)
    for (int64_t ti = 0; ti < t; ++ti)
      for (int64_t p = 0; p < hw; ++p) o.data()[(ti * hw + p) * c + ci] = x.data()[(ci * t + ti) * hw + p];
  return o;
}
Tensor frames(const Tensor& x, int64_t begin, int64_t end) {
  Shape s = x.shape();
  s[0] = end - begin;
  return Tensor::from(s, x.data() + begin * (x.numel() / x.dim(0)));
}

class Wan22VaeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    weights_ = new WeightStore(open_component_weights(vae_dir(), "vae"));
    cfg_ = new WanVaeConfig(WanVaeConfig::from_json_file(vae_dir() + "/config.json"));
    vae_ = new WanVae(*cfg_, *weights_);
    ref_ = new std::shared_ptr<SafetensorsFile>(SafetensorsFile::open(root() + "/vae/vae.safetensors"));
  }
  static void TearDownTestSuite() {
    delete vae_;
    delete cfg_;
    delete weights_;
    delete ref_;
  }
  static Tensor ref(const std::string& name) { return (*ref_)->load_f32(name); }
  static double report(const std::string& what, double e) {
    std::printf("%s: max rel error %.2e\n", what.c_str(), e);
    return e;
  }
  static WeightStore* weights_;
  static WanVaeConfig* cfg_;
  static WanVae* vae_;
  static std::shared_ptr<SafetensorsFile>* ref_;
};
WeightStore* Wan22VaeTest::weights_ = nullptr;
WanVaeConfig* Wan22VaeTest::cfg_ = nullptr;
WanVae* Wan22VaeTest::vae_ = nullptr;
std::shared_ptr<SafetensorsFile>* Wan22VaeTest::ref_ = nullptr;

TEST_F(Wan22VaeTest, PatchifyMatchesDiffusers) {
  const Tensor in = to_thwc(ref("patchify.input")), want = to_thwc(ref("patchify.output"));
  const Tensor p = wan::patchify(in, 2);
  ASSERT_EQ(p.shape(), want.shape());
  EXPECT_EQ(test::max_abs_diff(p.data(), want.data(), p.numel()), 0.0);
  const Tensor back = wan::unpatchify(p, 2);
  ASSERT_EQ(back.shape(), in.shape());
  EXPECT_EQ(test::max_abs_diff(back.data(), in.data(), in.numel()), 0.0);
}

// The shortcuts fold space/time into channels and back: dup_up undoes the
// fold that avg_down averages (one channel per group: a plain rearrangement).
TEST_F(Wan22VaeTest, AvgDownAndDupUpRearrange) {
  Tensor x({4, 4, 6, 3});
  for (int64_t i = 0; i < x.numel(); ++i) x.data()[i] = static_cast<float>(i % 97) - 40.0f;
  const Tensor folded = wan::avg_down(x, 3 * 8, 2, 2);  // group size 1
  ASSERT_EQ(folded.shape(), (Shape{2, 2, 3, 24}));
  const Tensor back = wan::dup_up(folded, 3, 2, 2, false);  // repeats 1
  ASSERT_EQ(back.shape(), x.shape());
  EXPECT_EQ(test::max_abs_diff(back.data(), x.data(), x.numel()), 0.0);
  // the first chunk drops ft-1 frames; one frame is padded to ft in front with zeros
  EXPECT_EQ(wan::dup_up(folded, 3, 2, 2, true).dim(0), 3);
  const Tensor one = wan::avg_down(frames(x, 0, 1), 3, 2, 1);  // mean of (zero frame, frame 0)
  EXPECT_FLOAT_EQ(one.data()[5], 0.5f * x.data()[5]);
}

TEST_F(Wan22VaeTest, ConfigFromJsonAndFromWeights) {
  const WanVaeConfig& c = *cfg_;
  EXPECT_TRUE(c.is_residual);
  EXPECT_EQ(c.patch_size, 2);
  EXPECT_EQ(c.z_dim, 48);
  EXPECT_EQ(c.base_dim, 8);
  EXPECT_EQ(c.decoder_base_dim, 12);
  EXPECT_EQ(c.in_channels, 12);
  EXPECT_EQ(c.spatial_scale(), 16);
  EXPECT_EQ(c.temporal_scale(), 4);
  ASSERT_EQ(c.latents_mean.size(), 48u);
  ASSERT_EQ(c.latents_std.size(), 48u);

  for (const WeightStore& w :
       {*weights_, wan_vae_weights_from_original(open_component({single_file(), "", ""}, "vae"))}) {
    const WanVaeConfig f = WanVaeConfig::from_weights(w);
    EXPECT_EQ(f.is_residual, c.is_residual);
    EXPECT_EQ(f.patch_size, c.patch_size);
    EXPECT_EQ(f.base_dim, c.base_dim);
    EXPECT_EQ(f.decoder_base_dim, c.decoder_base_dim);
    EXPECT_EQ(f.in_channels, c.in_channels);
    EXPECT_EQ(f.out_channels, c.out_channels);
    EXPECT_EQ(f.z_dim, c.z_dim);
    EXPECT_EQ(f.num_res_blocks, c.num_res_blocks);
    EXPECT_EQ(f.dim_mult, c.dim_mult);
    EXPECT_EQ(f.temperal_downsample, c.temperal_downsample);
    EXPECT_EQ(f.latents_mean, c.latents_mean);  // the published Wan 2.2 statistics
    EXPECT_EQ(f.latents_std, c.latents_std);
  }
}

TEST_F(Wan22VaeTest, BadConfigFieldsAreCorruptFiles) {
  const nlohmann::json j = nlohmann::json::parse(read_file(vae_dir() + "/config.json"));
  auto code = [&](const char* key, const nlohmann::json& value) {
    nlohmann::json bad = j;
    bad[key] = value;
    return test::code_of([&] { WanVaeConfig::from_json(bad, "x"); });
  };
  EXPECT_EQ(code("scale_factor_spatial", 8), ErrorCode::kCorruptFile);  // disagrees with patch 2 x 8
  EXPECT_EQ(code("scale_factor_temporal", 8), ErrorCode::kCorruptFile);
  EXPECT_EQ(code("patch_size", "two"), ErrorCode::kCorruptFile);
  EXPECT_EQ(code("patch_size", 0), ErrorCode::kCorruptFile);
  EXPECT_EQ(code("is_residual", "yes"), ErrorCode::kCorruptFile);
  EXPECT_EQ(code("decoder_base_dim", -4), ErrorCode::kCorruptFile);
  EXPECT_EQ(code("latents_mean", std::vector<float>(16, 0.0f)), ErrorCode::kCorruptFile);
  EXPECT_EQ(code("in_channels", 4), ErrorCode::kUnsupportedModel);  // not RGB
  EXPECT_EQ(code("decoder_base_dim", nullptr), ErrorCode::kOk);     // null: base_dim
  // a config that disagrees with the weights names the misshapen tensor
  WanVaeConfig wide = *cfg_;
  wide.decoder_base_dim = 16;
  EXPECT_EQ(test::code_of([&] { WanVae vae(wide, *weights_); }), ErrorCode::kShapeMismatch);
}

TEST_F(Wan22VaeTest, DecodeMatchesDiffusers) {
  Tensor last;
  for (int64_t lf = 1; lf <= 3; ++lf) {
    const std::string g = "decode.lf" + std::to_string(lf);
    const Tensor out = vae_->decode(to_thwc(ref(g + ".vae_input")));
    ASSERT_EQ(out.shape(), (Shape{1 + 4 * (lf - 1), 64, 96, 3}));
    EXPECT_LE(report(g, test::rel_err(out, to_thwc(ref(g + ".video")))), 1e-4);
    if (lf > 1) {  // causal: the first latent frames decode to the same first frames
      EXPECT_EQ(test::max_abs_diff(out.data(), last.data(), last.numel()), 0.0);
    }
    last = out;
  }
  EXPECT_EQ(test::code_of([&] { vae_->decode(Tensor::zeros({1, 4, 6, 16})); }), ErrorCode::kShapeMismatch);
}

// The decoder alone, one latent frame per chunk, against every stored chunk
// (patchified, before the clamp).
TEST_F(Wan22VaeTest, DecoderChunksMatchDiffusers) {
  const wan::ResidualDecoder decoder(*cfg_, *weights_);
  const Conv2d post_quant = load_conv(*weights_, "post_quant_conv", 48, 48, 1, 1, 0, 0);
  for (int64_t lf = 1; lf <= 3; ++lf) {
    const std::string g = "decode.lf" + std::to_string(lf);
    const Tensor z = post_quant.forward(to_thwc(ref(g + ".vae_input")));
    wan::Pass pass;
    pass.caches.resize(static_cast<size_t>(decoder.slots()));
    for (int64_t k = 0; k < lf; ++k) {
      pass.first = k == 0;
      pass.last = k + 1 == lf;
      const Tensor out = decoder.forward(frames(z, k, k + 1), pass);
      const std::string name = g + ".decoder_chunk" + std::to_string(k) + "_patchified";
      const Tensor want = to_thwc(ref(name));
      ASSERT_EQ(out.shape(), want.shape()) << name;
      EXPECT_LE(report(name, test::rel_err(out, want)), 1e-4);
    }
  }
}

TEST_F(Wan22VaeTest, EncodeMatchesDiffusers) {
  for (int64_t f : {1, 5, 9}) {
    const std::string g = "encode.f" + std::to_string(f);
    const Posterior p = vae_->encode(to_thwc(ref(g + ".video")));
    ASSERT_EQ(p.mean.shape(), (Shape{1 + (f - 1) / 4, 4, 6, 48}));
    EXPECT_LE(report(g + ".mean", test::rel_err(p.mean, to_thwc(ref(g + ".mean")))), 1e-4);
    EXPECT_LE(report(g + ".logvar", test::rel_err(p.logvar, to_thwc(ref(g + ".logvar")))), 1e-4);
    EXPECT_LE(report(g + ".std", test::rel_err(p.std, to_thwc(ref(g + ".std")))), 1e-4);
  }
  // not 1 + 4k frames; a size that is no multiple of 16
  EXPECT_EQ(test::code_of([&] { vae_->encode(Tensor::zeros({4, 64, 96, 3})); }), ErrorCode::kShapeMismatch);
  EXPECT_EQ(test::code_of([&] { vae_->encode(Tensor::zeros({1, 40, 96, 3})); }), ErrorCode::kShapeMismatch);
}

// The encoder alone: frame 0, then 4 frames per chunk, against every stored chunk.
TEST_F(Wan22VaeTest, EncoderChunksMatchDiffusers) {
  const wan::ResidualEncoder encoder(*cfg_, *weights_);
  const Tensor video = wan::patchify(to_thwc(ref("encode.f9.video")), 2);
  wan::Pass pass;
  pass.caches.resize(static_cast<size_t>(encoder.slots()));
  for (int64_t k = 0; k < 3; ++k) {
    pass.last = k == 2;
    const Tensor out =
        encoder.forward(k == 0 ? frames(video, 0, 1) : frames(video, 1 + 4 * (k - 1), 1 + 4 * k), pass);
    const std::string name = "encode.f9.encoder_chunk" + std::to_string(k);
    const Tensor want = to_thwc(ref(name));
    ASSERT_EQ(out.shape(), want.shape()) << name;
    EXPECT_LE(report(name, test::rel_err(out, want)), 1e-4);
  }
}

TEST_F(Wan22VaeTest, Bf16ComputeStaysClose) {
  WeightStore w = *weights_;
  w.set_compute_bf16(true);
  const WanVae vae(*cfg_, w);
  const double d =
      test::rel_err(vae.decode(to_thwc(ref("decode.lf2.vae_input"))), to_thwc(ref("decode.lf2.video")));
  const double e =
      test::rel_err(vae.encode(to_thwc(ref("encode.f5.video"))).mean, to_thwc(ref("encode.f5.mean")));
  std::printf("bf16: decode %.2e encode mean %.2e\n", d, e);
  EXPECT_LE(d, 5e-2);
  EXPECT_LE(e, 5e-2);
  EXPECT_GT(d, 0.0);  // it did compute in bf16
}

// Wan2.2_VAE.pth names, loaded the way the pipelines load a VAE file, give
// the folder's numbers exactly.
TEST_F(Wan22VaeTest, SingleFileMatchesFolder) {
  const WeightStore raw = open_component({single_file(), "", ""}, "vae");
  EXPECT_TRUE(is_wan_vae_original(raw));
  EXPECT_FALSE(is_wan_vae_original(*weights_));
  const WeightStore mapped = wan_vae_weights_from_original(raw);
  size_t same = 0;
  for (const auto& [name, info] : weights_->entries()) {
    ASSERT_TRUE(mapped.has(name)) << name;
    const Tensor a = mapped.get(name), b = weights_->get(name);
    ASSERT_EQ(a.numel(), b.numel()) << name;
    same += test::max_abs_diff(a.data(), b.data(), a.numel()) == 0.0;
  }
  EXPECT_EQ(same, weights_->entries().size());

  const std::unique_ptr<WanVae> file_vae = load_wan_vae_component({single_file(), "", ""}, false);
  ASSERT_TRUE(file_vae->config().is_residual);
  const Tensor z = to_thwc(ref("decode.lf2.vae_input"));
  EXPECT_EQ(test::max_abs_diff(file_vae->decode(z).data(), vae_->decode(z).data(), 5 * 64 * 96 * 3), 0.0);
  const Tensor v = to_thwc(ref("encode.f5.video"));
  const Posterior a = file_vae->encode(v), b = vae_->encode(v);
  EXPECT_EQ(test::max_abs_diff(a.mean.data(), b.mean.data(), b.mean.numel()), 0.0);
  EXPECT_EQ(test::max_abs_diff(a.logvar.data(), b.logvar.data(), b.logvar.numel()), 0.0);
}

TEST(Wan22Vae, OriginalNamesMapToDiffusersNames) {
  // pairs from diffusers' convert_wan_to_diffusers.py::convert_vae_22 (num_res_blocks 2)
  const std::pair<const char*, const char*> pairs[] = {
      {"encoder.downsamples.1.downsamples.0.shortcut.weight",
       "encoder.down_blocks.1.resnets.0.conv_shortcut.weight"},
      {"encoder.downsamples.2.downsamples.1.residual.3.gamma", "encoder.down_blocks.2.resnets.1.norm2.gamma"},
      {"encoder.downsamples.1.downsamples.2.time_conv.bias",
       "encoder.down_blocks.1.downsampler.time_conv.bias"},
      {"encoder.downsamples.0.downsamples.2.resample.1.weight",
       "encoder.down_blocks.0.downsampler.resample.1.weight"},
      {"decoder.upsamples.3.upsamples.2.residual.6.bias", "decoder.up_blocks.3.resnets.2.conv2.bias"},
      {"decoder.upsamples.0.upsamples.3.time_conv.weight", "decoder.up_blocks.0.upsampler.time_conv.weight"},
      {"decoder.upsamples.2.upsamples.3.resample.1.bias", "decoder.up_blocks.2.upsampler.resample.1.bias"},
      {"decoder.middle.1.to_qkv.weight", "decoder.mid_block.attentions.0.to_qkv.weight"},
      {"decoder.head.0.gamma", "decoder.norm_out.gamma"},
      {"conv1.weight", "quant_conv.weight"},
  };
  for (const auto& [from, to] : pairs) EXPECT_EQ(wan_vae_diffusers_name(from, 2), to) << from;
}

}  // namespace
}  // namespace vg
