// Spatially tiled Wan VAE decode (WanTiling, diffusers' tiled_decode) on the
// wan22-tiny VAE: close to the whole decode, equal when one tile covers the
// latent, and less memory on a larger latent.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>

#include "core/memory.h"
#include "io/safetensors.h"
#include "io/weights.h"
#include "models/wan_vae.h"
#include "models/wan_vae_blocks.h"
#include "test_util.h"

namespace vg {
namespace {

std::string root() { return test::fixtures() + "/wan22-tiny"; }
std::string vae_dir() { return root() + "/models/wan22-tiny-ti2v/vae"; }

// diffusers' [1, C, T, H, W] -> our [T, H, W, C]
Tensor to_thwc(const Tensor& x) {
  const int64_t c = x.dim(1), t = x.dim(2), hw = x.dim(3) * x.dim(4);
  Tensor o({t, x.dim(3), x.dim(4), c});
  for (int64_t ci = 0; ci < c; ++ci)
    for (int64_t ti = 0; ti < t; ++ti)
      for (int64_t p = 0; p < hw; ++p) o.data()[(ti * hw + p) * c + ci] = x.data()[(ci * t + ti) * hw + p];
  return o;
}

double psnr(const Tensor& a, const Tensor& b) {  // values in [-1, 1]: peak-to-peak 2
  double se = 0;
  for (int64_t i = 0; i < a.numel(); ++i) se += (a.data()[i] - b.data()[i]) * (a.data()[i] - b.data()[i]);
  return 20.0 * std::log10(2.0 / std::sqrt(se / static_cast<double>(a.numel())));
}

class WanVaeTilingTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    weights_ = new WeightStore(open_component_weights(vae_dir(), "vae"));
    vae_ = new WanVae(WanVaeConfig::from_json_file(vae_dir() + "/config.json"), *weights_, false);
  }
  static void TearDownTestSuite() {
    delete vae_;
    delete weights_;
  }
  // decode.lfN.vae_input: N latent frames of 4x6 latents (64x96 pixels)
  static Tensor latents(int lf) {
    const auto f = SafetensorsFile::open(root() + "/vae/vae.safetensors");
    return to_thwc(f->load_f32("decode.lf" + std::to_string(lf) + ".vae_input"));
  }
  static WeightStore* weights_;
  static WanVae* vae_;
};
WeightStore* WanVaeTilingTest::weights_ = nullptr;
WanVae* WanVaeTilingTest::vae_ = nullptr;

TEST(WanVaeTiling, BlendIsDiffusersLinearRamp) {
  // a's rows hold 1..5, b is zero: b's first 4 rows become a's last 4 * (1 - y/4)
  Tensor a({2, 5, 3, 2}), b = Tensor::zeros({2, 4, 3, 2});
  for (int64_t i = 0; i < a.numel(); ++i) a.data()[i] = static_cast<float>((i / 6) % 5 + 1);
  wan::blend_tiles(a, b, 1, 4);
  const float want[4] = {2.0f * 1.0f, 3.0f * 0.75f, 4.0f * 0.5f, 5.0f * 0.25f};
  for (int64_t t = 0; t < 2; ++t)
    for (int64_t y = 0; y < 4; ++y)
      for (int64_t k = 0; k < 6; ++k) EXPECT_FLOAT_EQ(b.data()[(t * 4 + y) * 6 + k], want[y]) << t << " " << y;
  // columns, the extent limited to the narrower tile (2): weights 1 and 1/2
  Tensor l = Tensor::zeros({1, 2, 2, 1}), r({1, 2, 3, 1});
  l.data()[1] = l.data()[3] = 1.0f;  // l's last column is 1
  for (int64_t i = 0; i < r.numel(); ++i) r.data()[i] = 3.0f;
  wan::blend_tiles(l, r, 2, 8);
  for (int64_t y = 0; y < 2; ++y) {
    EXPECT_FLOAT_EQ(r.data()[y * 3 + 0], 0.0f);  // l's column 0 * 1 + r * 0
    EXPECT_FLOAT_EQ(r.data()[y * 3 + 1], 0.5f * 1.0f + 0.5f * 3.0f);
    EXPECT_FLOAT_EQ(r.data()[y * 3 + 2], 3.0f);  // beyond the extent: unchanged
  }
}

TEST(WanVaeTiling, WantedByMode) {
  EXPECT_TRUE(wan_vae_tiling_wanted("on", 64, 64));
  EXPECT_FALSE(wan_vae_tiling_wanted("off", 1280, 720));
  EXPECT_TRUE(wan_vae_tiling_wanted("auto", 832, 480));
  EXPECT_TRUE(wan_vae_tiling_wanted("auto", 1280, 704));
  EXPECT_FALSE(wan_vae_tiling_wanted("auto", 512, 512));
  EXPECT_FALSE(wan_vae_tiling_wanted("auto", 480, 320));
  EXPECT_EQ(test::code_of([] { wan_vae_tiling_wanted("sometimes", 64, 64); }), ErrorCode::kInvalidArgument);
}

TEST_F(WanVaeTilingTest, TiledIsCloseToWhole) {
  const Tensor z = latents(3);
  const Tensor whole = vae_->decode(z);
  auto compare = [&](int64_t tile, int64_t stride) {
    const Tensor t = vae_->decode(z, WanTiling{true, tile, stride});
    EXPECT_EQ(t.shape(), whole.shape());
    const double d = test::max_abs_diff(t.data(), whole.data(), t.numel()), p = psnr(t, whole);
    std::printf("tile %lld stride %lld: max abs diff %.4f, PSNR %.1f dB\n", (long long)tile, (long long)stride, d, p);
    return p;
  };
  const double small = compare(32, 16), large = compare(64, 48);
  // stride == tile: the same seams as 64/48 without overlap or blending
  const double seams = compare(48, 48);
  // the tiny random VAE attends over the whole frame, so tiles of 2-4 latents
  // differ a lot from the whole decode; the blended overlap still helps
  EXPECT_GT(small, 14.0);
  EXPECT_GT(large, 18.0);
  EXPECT_GT(large, seams + 2.0);
}

// Tiles 64/48 on 4x6 latents: tile (0,0) = latents [0,4)x[0,4), (0,1) =
// [0,4)x[3,6), (1,0) = [3,4)x[0,4). Rebuild the output by hand from whole
// decodes of those crops: diffusers' ramps over 8 patched (16) pixels.
TEST_F(WanVaeTilingTest, MatchesHandBlendedTiles) {
  const Tensor z = latents(2);
  auto crop = [&](int64_t y0, int64_t y1, int64_t x0, int64_t x1) {
    Tensor o({z.dim(0), y1 - y0, x1 - x0, z.dim(3)});
    const int64_t c = z.dim(3);
    for (int64_t t = 0; t < z.dim(0); ++t)
      for (int64_t y = y0; y < y1; ++y)
        for (int64_t x = x0; x < x1; ++x)
          std::copy_n(z.data() + ((t * z.dim(1) + y) * z.dim(2) + x) * c, c,
                      o.data() + ((t * (y1 - y0) + y - y0) * (x1 - x0) + x - x0) * c);
    return vae_->decode(o);
  };
  const Tensor out = vae_->decode(z, WanTiling{true, 64, 48});
  const Tensor a = crop(0, 4, 0, 4), b = crop(0, 4, 3, 6), c = crop(3, 4, 0, 4);
  auto at = [](const Tensor& t, int64_t f, int64_t y, int64_t x, int64_t k) {
    return t.data()[((f * t.dim(1) + y) * t.dim(2) + x) * 3 + k];
  };
  auto free = [](float v) { return std::fabs(v) < 0.999f; };  // not clamped
  double worst = 0;
  int64_t blended = 0;
  for (int64_t f = 0; f < out.dim(0); ++f)
    for (int64_t k = 0; k < 3; ++k) {
      for (int64_t y = 0; y < 48; ++y)
        for (int64_t x = 0; x < 96; ++x) {
          float want;
          if (x < 48) {
            want = at(a, f, y, x, k);  // tile (0,0): nothing above or left
          } else if (x >= 64) {
            want = at(b, f, y, x - 48, k);  // tile (0,1) past the overlap
          } else {  // a's last 16 columns fade into b's first, per 2x2 patch
            const float w = static_cast<float>((x - 48) / 2) / 8.0f, va = at(a, f, y, x, k), vb = at(b, f, y, x - 48, k);
            if (!free(va) || !free(vb)) continue;
            want = va * (1.0f - w) + vb * w;
            ++blended;
          }
          worst = std::max(worst, static_cast<double>(std::fabs(at(out, f, y, x, k) - want)));
        }
      for (int64_t y = 48; y < 64; ++y)  // tile (1,0) fades in from a's last 16 rows
        for (int64_t x = 0; x < 48; ++x) {
          const float w = static_cast<float>((y - 48) / 2) / 8.0f, va = at(a, f, y, x, k), vc = at(c, f, y - 48, x, k);
          if (!free(va) || !free(vc)) continue;
          worst = std::max(worst, static_cast<double>(std::fabs(at(out, f, y, x, k) - (va * (1.0f - w) + vc * w))));
          ++blended;
        }
    }
  std::printf("hand-blended tiles: max abs diff %.2e over %lld blended values\n", worst, (long long)blended);
  EXPECT_GT(blended, 1000);
  EXPECT_LT(worst, 1e-5);
}

TEST_F(WanVaeTilingTest, OneTileIsTheWholeDecode) {
  const Tensor z = latents(2);
  const Tensor whole = vae_->decode(z);
  // 96 pixels = 6 latents cover the 4x6 latent: no tiling
  const Tensor t = vae_->decode(z, WanTiling{true, 96, 48});
  ASSERT_EQ(t.shape(), whole.shape());
  EXPECT_EQ(test::max_abs_diff(t.data(), whole.data(), t.numel()), 0.0);
  const Tensor off = vae_->decode(z, WanTiling{false, 32, 16});  // disabled: no tiling either
  EXPECT_EQ(test::max_abs_diff(off.data(), whole.data(), off.numel()), 0.0);
}

TEST_F(WanVaeTilingTest, TiledKeepsFramesAndCausality) {
  const WanTiling tiling{true, 32, 16};
  Tensor last;
  for (int lf = 1; lf <= 3; ++lf) {
    const Tensor t = vae_->decode(latents(lf), tiling);
    ASSERT_EQ(t.shape(), (Shape{1 + 4 * (lf - 1), 64, 96, 3}));
    // each tile keeps its own time caches: the first latent frames decode to the same first frames
    if (lf > 1) EXPECT_EQ(test::max_abs_diff(t.data(), last.data(), last.numel()), 0.0);
    last = t;
  }
}

TEST_F(WanVaeTilingTest, BadTilesAreInvalidArguments) {
  const Tensor z = latents(1);
  for (const WanTiling& t : {WanTiling{true, 32, 0}, WanTiling{true, 32, 48}, WanTiling{true, 40, 16},
                             WanTiling{true, 32, 8}, WanTiling{true, 0, 0}})
    EXPECT_EQ(test::code_of([&] { vae_->decode(z, t); }), ErrorCode::kInvalidArgument)
        << t.tile << " " << t.stride;
}

// A larger random latent (2 latent frames, 32x32 latents = 512x512 pixels):
// the peak RSS growth of the tiled decode (128/96-pixel tiles) is well below
// the whole decode's. Large enough that the activations, which grow with the
// area only when untiled, outweigh what the first decode of a process maps
// (the tiled one runs first).
TEST_F(WanVaeTilingTest, TiledDecodeUsesLessMemory) {
  if (test::under_asan()) GTEST_SKIP() << "resident memory is not visiongen's own under AddressSanitizer";
  Tensor z({2, 32, 32, 48});
  std::mt19937 gen(7);
  std::normal_distribution<float> nd;
  for (int64_t i = 0; i < z.numel(); ++i) z.data()[i] = nd(gen);
  auto growth = [&](const WanTiling& t, Tensor* out) {
    reset_peak_rss();
    const double before = peak_rss_bytes();
    *out = vae_->decode(z, t);
    return peak_rss_bytes() - before;
  };
  Tensor tiled, whole;
  const double g_tiled = growth(WanTiling{true, 128, 96}, &tiled);
  const double g_whole = growth(WanTiling{}, &whole);
  std::printf("peak RSS growth: tiled %.1f MB, whole %.1f MB; max abs diff %.4f, PSNR %.1f dB\n", g_tiled / 1e6,
              g_whole / 1e6, test::max_abs_diff(tiled.data(), whole.data(), whole.numel()), psnr(tiled, whole));
  ASSERT_EQ(tiled.shape(), (Shape{5, 512, 512, 3}));
  EXPECT_LT(g_tiled, 0.6 * g_whole);
}

}  // namespace
}  // namespace vg
