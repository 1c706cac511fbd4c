// `visiongen bench --arch wan22-ti2v-5b`: the video section at a tiny size
// (real widths, a one-block stack, one UMT5 layer); about 10 s on 2 cores, so Slow.
#include <nlohmann/json.hpp>

#include "test_util.h"

namespace vg {
namespace {

TEST(BenchWan, QuickRunReportsEveryFigureSlow) {
  auto r = test::run_cli("bench --arch wan22-ti2v-5b --quick --precision fp32 --json");
  ASSERT_EQ(r.code, 0) << r.out;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["arch"], "wan22-ti2v-5b");
  EXPECT_FALSE(j["cpu"].get<std::string>().empty());
  ASSERT_EQ(j["runs"].size(), 1u);
  const auto& run = j["runs"][0];
  EXPECT_EQ(run["transformer_timed"], "measured 1 blocks, scaled to 30");
  EXPECT_NEAR(run["transformer_params_b"].get<double>(), 5.0, 0.35);  // TI2V-5B
  const auto& t = run["transformer"][0];
  EXPECT_EQ(t["frames"], 5);
  EXPECT_EQ(t["tokens"], 2 * 2 * 2);  // 2 latent frames of a 2x2 patch grid at 64x64
  EXPECT_GT(t["transformer_s_per_call"].get<double>(), t["measured_s"].get<double>());  // scaled to 30 blocks
  EXPECT_GT(t["frac_of_gemm_peak"].get<double>(), 0);
  EXPECT_GT(t["gemm_peak_gflops"].get<double>(), 0);
  EXPECT_GT(run["umt5_s"].get<double>(), 0);
  EXPECT_GT(run["vae_decode_s_per_frame"].get<double>(), 0);
  EXPECT_GT(run["vae_decode_tiled_s_per_frame"].get<double>(), 0);  // the same decode in 256-pixel tiles
  EXPECT_GT(j["peak_rss_gb"].get<double>(), 0);
  // bad sizes and frame counts are refused
  r = test::run_cli("bench --arch wan22-ti2v-5b --video-size 100x64");
  EXPECT_EQ(r.code, 10 + static_cast<int>(ErrorCode::kInvalidArgument)) << r.out;
  r = test::run_cli("bench --arch wan22-ti2v-5b --frames 6");
  EXPECT_EQ(r.code, 10 + static_cast<int>(ErrorCode::kInvalidArgument)) << r.out;
}

}  // namespace
}  // namespace vg
