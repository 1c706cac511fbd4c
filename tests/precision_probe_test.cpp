// --precision auto decides by measurement (not CPU flags) and caches it.
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "backend/cpu/bf16.h"
#include "backend/cpu/precision_probe.h"
#include "pipelines/family_engine.h"
#include "test_util.h"
#include "visiongen/visiongen.h"

namespace vg {
namespace {

std::string fresh_cache() {
  const std::string d = testing::TempDir() + "/precision_probe_" + std::to_string(::getpid());
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  return d + "/precision.json";
}

TEST(PrecisionProbe, ChoiceFollowsTheMeasurementNotTheFlags) {
  // the same CPU (whatever its flags) picks what its timings say
  int calls = 0;
  auto slow_bf16 = [&](const std::vector<ProbeShape>& shapes) {
    ++calls;
    EXPECT_FALSE(shapes.empty());
    return std::map<std::string, double>{{"fp32", 1.0}, {"bf16", 1.7}};  // the Xeon without AMX
  };
  auto fast_bf16 = [&](const std::vector<ProbeShape>&) {
    ++calls;
    return std::map<std::string, double>{{"fp32", 1.75}, {"bf16", 1.0}};  // Zen 4
  };
  const std::string cache = fresh_cache();
  PrecisionProbe a = choose_precision("sd", slow_bf16, cache);
  EXPECT_EQ(a.choice, "fp32");
  EXPECT_FALSE(a.cached);
  PrecisionProbe b = choose_precision("sdxl", fast_bf16, cache);
  EXPECT_EQ(b.choice, "bf16");
  EXPECT_EQ(calls, 2);
  // cached per (cpu, arch): no new measurement, same answers
  PrecisionProbe a2 = choose_precision("sd", fast_bf16, cache);
  PrecisionProbe b2 = choose_precision("sdxl", slow_bf16, cache);
  EXPECT_EQ(calls, 2);
  EXPECT_TRUE(a2.cached && b2.cached);
  EXPECT_EQ(a2.choice, "fp32");
  EXPECT_EQ(b2.choice, "bf16");
  EXPECT_DOUBLE_EQ(b2.seconds.at("fp32"), 1.75);
  // system --measure-precision: a new measurement replaces the cached one
  PrecisionProbe b3 = choose_precision("sdxl", slow_bf16, cache, /*remeasure=*/true);
  EXPECT_EQ(calls, 3);
  EXPECT_FALSE(b3.cached);
  EXPECT_EQ(b3.choice, "fp32");
  EXPECT_EQ(choose_precision("sdxl", fast_bf16, cache).choice, "fp32");
  calls = 2;  // the counts below start from the two first measurements
  // a damaged cache is measured again, not trusted
  { std::ofstream(cache) << "{not json"; }
  PrecisionProbe c = choose_precision("sd", fast_bf16, cache);
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(c.choice, "bf16");
  // near-ties keep fp32 (exact parity with diffusers)
  EXPECT_EQ(faster_candidate({{"fp32", 1.0}, {"bf16", 0.99}}), "fp32");
  EXPECT_EQ(faster_candidate({{"fp32", 1.0}}), "fp32");
}

TEST(PrecisionProbe, RealTimingsGiveAChoiceBothWaysConsistent) {
  if (!cpu_can_bf16()) GTEST_SKIP() << "no bf16 path on this CPU";
  const std::map<std::string, double> s = time_candidates({{256, 128, 128}, {1, 64, 64, 16, 16, true}});
  ASSERT_TRUE(s.count("fp32") && s.count("bf16"));
  EXPECT_GT(s.at("fp32"), 0);
  EXPECT_GT(s.at("bf16"), 0);
  EXPECT_EQ(faster_candidate(s), s.at("bf16") < 0.97 * s.at("fp32") ? "bf16" : "fp32");
}

TEST(PrecisionProbe, SmallModelsAndExplicitChoicesSkipTheProbe) {
  EXPECT_EQ(resolve_precision("fp32", 1e10), "fp32");
  EXPECT_EQ(resolve_precision("bf16", 1e3), "bf16");
  EXPECT_EQ(resolve_precision("auto", 1e6), "fp32");  // tiny model: parity
  EXPECT_EQ(resolve_precision("fast", 1e10), "");
}

// Weights that cannot fit are refused before loading, naming what would fit.
TEST(WeightsFit, RefusedBeforeLoadingWithTheQuantisationThatFits) {
  const std::string model = test::tiny_model();
  const double f32 = weight_bytes_in_memory(model, false, false);
  EXPECT_GT(f32, 1e6);
  EXPECT_NEAR(weight_bytes_in_memory(model, true, false), f32 / 2, f32 * 0.01);
  const char* saved = std::getenv("VG_MEMORY_LIMIT_BYTES");
  LoadOptions lo;
  lo.precision = "fp32";
  setenv("VG_MEMORY_LIMIT_BYTES", std::to_string(f32 * 0.4).c_str(), 1);  // bf16 does not fit, q8_0 does
  auto e = Engine::load(model, lo);
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().code, ErrorCode::kOutOfMemory);
  EXPECT_NE(e.error().message.find("--type q8_0"), std::string::npos) << e.error().message;
  setenv("VG_MEMORY_LIMIT_BYTES", std::to_string(f32 * 0.6).c_str(), 1);
  e = Engine::load(model, lo);
  ASSERT_FALSE(e);
  EXPECT_NE(e.error().message.find("--precision bf16"), std::string::npos) << e.error().message;
  setenv("VG_MEMORY_LIMIT_BYTES", std::to_string(f32 * 0.05).c_str(), 1);
  e = Engine::load(model, lo);
  ASSERT_FALSE(e);
  EXPECT_NE(e.error().message.find("does not fit"), std::string::npos) << e.error().message;
  if (saved) setenv("VG_MEMORY_LIMIT_BYTES", saved, 1);
  else unsetenv("VG_MEMORY_LIMIT_BYTES");
  // unknown load options are refused before anything is read
  for (auto set : {+[](LoadOptions& o) { o.quant_compute = "fast"; }, +[](LoadOptions& o) { o.lora_mode = "fused"; }}) {
    LoadOptions bad = lo;
    set(bad);
    auto r = Engine::load(model, bad);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument) << r.error().message;
  }
  EXPECT_TRUE(Engine::load(model, lo));
}

}  // namespace
}  // namespace vg
