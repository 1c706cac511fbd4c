// `visiongen bench --arch flux-*|sd35-*|zimage-turbo|qwen-image`: the DiT section at a tiny image
// size (real widths, one-block stacks); each runs 10-40 s on 2 cores, so they carry the Slow label.
#include <nlohmann/json.hpp>

#include "test_util.h"

namespace vg {
namespace {

TEST(BenchDit, FluxSchnellPrintsEveryFieldSlow) {
  auto r = test::run_cli("bench --arch flux-schnell --sizes 64 --steps 1 --precision fp32 --stack 1");
  ASSERT_EQ(r.code, 0) << r.out;
  for (const char* field :
       {"GEMM peak", "measured 1+1 blocks, scaled to 19+38", "(16 image + 512 text tokens)", "s/step",
        "GFLOP/step", "GFLOP/s", "of the fp32 GEMM peak", "text encode", "T5-XXL", "measured 1 of 24 layers",
        "CLIP-L", "VAE decode", "peak RSS"})
    EXPECT_NE(r.out.find(field), std::string::npos) << field << "\n" << r.out;
}

TEST(BenchDit, Sd35MediumJsonFieldsSlow) {
  auto r = test::run_cli("bench --arch sd35-medium --sizes 64 --steps 1 --precision fp32 --stack 1 --json");
  ASSERT_EQ(r.code, 0) << r.out;
  auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["runs"].size(), 1u);
  const auto& run = j["runs"][0];
  EXPECT_EQ(run["precision"], "fp32");
  EXPECT_EQ(run["transformer_timed"], "measured 1 blocks, scaled to 24");
  // SD3.5-medium has 2.5B parameters, about 0.23B of them its 384x384 position table
  EXPECT_NEAR(run["transformer_params_b"].get<double>(), 2.47, 0.15);
  EXPECT_GT(run["gemm_peak_gflops"].get<double>(), 0);
  const auto& s = run["sizes"][0];
  EXPECT_EQ(s["image_tokens"], 16);
  EXPECT_EQ(s["text_tokens"], 333);
  EXPECT_GT(s["transformer_s_per_step"].get<double>(), s["measured_s_per_step"].get<double>());  // scaled up
  EXPECT_GT(s["frac_of_gemm_peak"].get<double>(), 0);
  EXPECT_GT(s["vae_decode_s"].get<double>(), 0);
  EXPECT_GT(run["text_encode_s"].get<double>(), run["t5_s"].get<double>());  // CLIP-L + G on top
  EXPECT_GT(j["peak_rss_gb"].get<double>(), 0);
}

TEST(BenchDit, ZImageTurboPrintsEveryFieldSlow) {
  auto r = test::run_cli("bench --arch zimage-turbo --sizes 64 --steps 1 --precision fp32 --stack 1");
  ASSERT_EQ(r.code, 0) << r.out;
  for (const char* field :
       {"GEMM peak", "measured 1+1+1 blocks, scaled to 2+2+30", "(16 image + 512 text tokens)", "s/step",
        "GFLOP/step", "of the fp32 GEMM peak", "text encode", "Qwen3-4B at 512 tokens",
        "measured 1 of the 35 layers run", "VAE decode", "peak RSS"})
    EXPECT_NE(r.out.find(field), std::string::npos) << field << "\n" << r.out;
}

TEST(BenchDit, ZImageTurboJsonFieldsSlow) {
  auto r = test::run_cli("bench --arch zimage-turbo --sizes 64 --steps 1 --precision fp32 --stack 1 --json");
  ASSERT_EQ(r.code, 0) << r.out;
  auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["runs"].size(), 1u);
  const auto& run = j["runs"][0];
  EXPECT_EQ(run["transformer_timed"], "measured 1+1+1 blocks, scaled to 2+2+30");
  EXPECT_NEAR(run["transformer_params_b"].get<double>(), 6.15, 0.1);  // Z-Image-Turbo: 6.15B
  const auto& s = run["sizes"][0];
  EXPECT_EQ(s["image_tokens"], 16);
  EXPECT_EQ(s["text_tokens"], 512);
  EXPECT_GT(s["transformer_s_per_step"].get<double>(), s["measured_s_per_step"].get<double>());
  EXPECT_GT(s["transformer_gflops"].get<double>(), 0);
  // ~2 FLOPs per parameter per token over the padded 32 image + 512 caption tokens
  EXPECT_NEAR(s["transformer_gflop"].get<double>() / (2 * run["transformer_params_b"].get<double>() * 544), 1, 0.1);
  EXPECT_GT(s["vae_decode_s"].get<double>(), 0);
  EXPECT_EQ(run["llm"], "Qwen3-4B");
  EXPECT_EQ(run["llm_measured_layers"], 1);
  EXPECT_EQ(run["llm_layers"], 35);  // hidden_states[-2] of 36
  EXPECT_GT(run["llm_encode_s"].get<double>(), 0);
  EXPECT_EQ(run["text_encode_s"], run["llm_encode_s"]);
  EXPECT_GT(j["peak_rss_gb"].get<double>(), 0);
}

TEST(BenchDit, QwenImagePrintsEveryFieldSlow) {
  auto r = test::run_cli("bench --arch qwen-image --sizes 64 --steps 1 --precision fp32 --stack 1");
  ASSERT_EQ(r.code, 0) << r.out;
  for (const char* field :
       {"GEMM peak", "measured 1 blocks, scaled to 60", "(16 image + 66 text tokens)", "s/step", "GFLOP/step",
        "of the fp32 GEMM peak", "text encode", "Qwen2.5-VL-7B at 100 tokens", "measured 1 of the 28 layers run",
        "VAE decode", "Wan VAE", "peak RSS"})
    EXPECT_NE(r.out.find(field), std::string::npos) << field << "\n" << r.out;
}

TEST(BenchDit, QwenImageJsonFieldsSlow) {
  auto r = test::run_cli("bench --arch qwen-image --sizes 64 --steps 1 --precision fp32 --stack 1 --json");
  ASSERT_EQ(r.code, 0) << r.out;
  auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["runs"].size(), 1u);
  const auto& run = j["runs"][0];
  EXPECT_EQ(run["transformer_timed"], "measured 1 blocks, scaled to 60");
  EXPECT_NEAR(run["transformer_params_b"].get<double>(), 20.4, 0.2);  // Qwen-Image: 20.4B
  const auto& s = run["sizes"][0];
  EXPECT_EQ(s["image_tokens"], 16);
  EXPECT_EQ(s["text_tokens"], 66);
  EXPECT_GT(s["transformer_s_per_step"].get<double>(), s["measured_s_per_step"].get<double>());
  // each token meets its own stream's qkv/out/MLP: 12 d^2 of a block's 36 d^2 (the rest: two streams'
  // modulation, one row each), so ~1/3 of 2 FLOPs per parameter per token over 16 + 66 tokens
  EXPECT_NEAR(s["transformer_gflop"].get<double>() / (2 * run["transformer_params_b"].get<double>() * 82), 1.0 / 3,
              0.03);
  EXPECT_GT(s["vae_decode_s"].get<double>(), 0);
  EXPECT_EQ(run["llm"], "Qwen2.5-VL-7B");
  EXPECT_EQ(run["llm_layers"], 28);
  EXPECT_GT(run["llm_encode_s"].get<double>(), 0);
  EXPECT_GT(j["peak_rss_gb"].get<double>(), 0);
}

TEST(BenchDit, FluxParamsAndUnknownArch) {
  auto r = test::run_cli("bench --arch flux-pro --sizes 64");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("flux-pro"), std::string::npos) << r.out;
  for (const char* a : {"zimage-turbo", "qwen-image"})  // the valid archs are listed
    EXPECT_NE(r.out.find(a), std::string::npos) << a << "\n" << r.out;
  EXPECT_NE(test::run_cli("bench --arch flux-dev --sizes 40 --stack 1").code, 0);  // not a multiple of 16
}

}  // namespace
}  // namespace vg
