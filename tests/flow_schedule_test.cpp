// Rectified-flow schedules vs diffusers 0.40 (flux-tiny and sd3-tiny
// fixtures): FLUX's pipeline sigmas with dynamic shift from the token count,
// schnell unshifted, SD3's static shift applied twice at the low end,
// FlowMatchHeun's interleaved calls and DPM-Solver++'s flow form.
#include "sampling/sampler.h"
#include "test_util.h"

namespace vg {
namespace {

void expect_schedule(const Sampler& s, const SafetensorsFile& ref, const std::string& key) {
  const Tensor ts = ref.load_f32(key + ".timesteps"), sg = ref.load_f32(key + ".sigmas");
  ASSERT_EQ(s.timesteps().size(), static_cast<size_t>(ts.numel())) << key;
  ASSERT_EQ(s.sigmas().size(), static_cast<size_t>(sg.numel())) << key;
  for (int64_t i = 0; i < ts.numel(); ++i) EXPECT_NEAR(s.timesteps()[i], ts.data()[i], 2e-3) << key << " t" << i;
  for (int64_t i = 0; i < sg.numel(); ++i) EXPECT_NEAR(s.sigmas()[i], sg.data()[i], 2e-6) << key << " s" << i;
}

SchedulerConfig config(const std::string& model) {
  return SchedulerConfig::from_json_file(model + "/scheduler/scheduler_config.json");
}

TEST(FlowSchedule, FluxDevAndSchnellMatchDiffusers) {
  const std::string root = test::fixtures() + "/flux-tiny";
  auto ref = SafetensorsFile::open(root + "/scheduler/schedules.safetensors");
  for (const char* variant : {"dev", "schnell"}) {
    const SchedulerConfig cfg = config(root + "/models/flux-tiny-" + variant);
    for (int steps : std::string(variant) == "dev" ? std::vector<int>{4, 8, 28} : std::vector<int>{1, 2, 4})
      for (auto [w, h] : {std::pair{64, 64}, {96, 64}, {1024, 1024}}) {
        SamplerOptions o;
        o.image_seq_len = (w / 16) * (h / 16);
        o.flow_linear_sigmas = true;
        auto s = make_sampler(resolve_sampler("euler", "default", cfg, o), cfg, o);
        s->set_timesteps(steps);
        EXPECT_EQ(s->name(), "flow_euler");
        expect_schedule(*s, *ref, std::string(variant) + ".steps" + std::to_string(steps) + "." +
                                      std::to_string(w) + "x" + std::to_string(h));
      }
  }
  // DPM-Solver++ 2M in its flow form (FluxPipeline drops its sigmas; flow_shift = exp(mu))
  const SchedulerConfig cfg = config(root + "/models/flux-tiny-dev");
  for (int steps : {4, 8}) {
    SamplerOptions o;
    o.image_seq_len = 24;
    o.flow_linear_sigmas = true;
    auto s = make_sampler(resolve_sampler("DPMSolverMultistepScheduler", "default", cfg, o), cfg, o);
    s->set_timesteps(steps);
    expect_schedule(*s, *ref, "dev_dpmpp2m_flow.steps" + std::to_string(steps) + ".96x64");
  }
}

TEST(FlowSchedule, Sd3EulerAndHeunMatchDiffusers) {
  const std::string root = test::fixtures() + "/sd3-tiny";
  auto ref = SafetensorsFile::open(root + "/scheduler/schedules.safetensors");
  const SchedulerConfig cfg = config(root + "/models/sd3-tiny");
  for (const char* name : {"euler", "heun"})
    for (int steps : {4, 8, 28}) {
      auto s = make_sampler(resolve_sampler(name, "default", cfg), cfg);
      s->set_timesteps(steps);
      EXPECT_EQ(s->order(), std::string(name) == "heun" ? 2 : 1);
      expect_schedule(*s, *ref, std::string(name) + ".steps" + std::to_string(steps));
    }
}

TEST(FlowSchedule, SdOnlySamplersAreRefusedOnFlowModels) {
  const SchedulerConfig cfg = config(test::fixtures() + "/sd3-tiny/models/sd3-tiny");
  try {
    resolve_sampler("euler_a", "default", cfg);
    FAIL() << "euler_a has no flow form";
  } catch (const VgException& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("flow-matching"), std::string::npos);
  }
  EXPECT_THROW(resolve_sampler("flow_euler", "default", SchedulerConfig::sd15_default()), VgException);
}

}  // namespace
}  // namespace vg

namespace vg {
namespace {

// ComfyUI's schedules in flow form: sigma table shift(k/N), timestep = sigma.
TEST(FlowSchedule, ComfyScheduleNamesInFlowForm) {
  const SchedulerConfig sd3 = config(test::fixtures() + "/sd3-tiny/models/sd3-tiny");
  const SchedulerConfig schnell = config(test::fixtures() + "/flux-tiny/models/flux-tiny-schnell");
  auto sigmas = [](const SchedulerConfig& cfg, const char* sched, int steps) {
    SamplerChoice c = resolve_sampler("euler", sched, cfg);
    EXPECT_TRUE(c.warnings.empty()) << sched;
    SamplerOptions o;
    auto s = make_sampler(c, cfg, o);
    s->set_timesteps(steps);
    return s->sigmas();
  };
  // normal = linspace(timestep(sigma_max), timestep(sigma_min)) through sigma(): SD3's diffusers default
  const auto def = sigmas(sd3, "default", 8), normal = sigmas(sd3, "normal", 8);
  ASSERT_EQ(def.size(), normal.size());
  for (size_t i = 0; i < def.size(); ++i) EXPECT_NEAR(def[i], normal[i], 1e-6);
  // simple on an unshifted table: every N/steps-th sigma from the top
  const auto simple = sigmas(schnell, "simple", 4);
  ASSERT_EQ(simple.size(), 5u);
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(simple[i], 1.0 - 0.25 * i, 1e-6);
  // beta: symmetric ppf spacing, descending, ends at 0
  const auto beta = sigmas(sd3, "beta", 10);
  ASSERT_GE(beta.size(), 9u);
  for (size_t i = 1; i < beta.size(); ++i) EXPECT_LT(beta[i], beta[i - 1]);
  EXPECT_EQ(beta.back(), 0.0f);
  // a schedule without a flow form falls back with a warning
  EXPECT_FALSE(resolve_sampler("euler", "karras", sd3).warnings.empty());
}

// Z-Image-Turbo (static shift 3) and Qwen-Image (dynamic exponential shift
// stretched to shift_terminal 0.02) with the pipelines' linspace(1, 1/N, N)
// sigmas, for FlowMatchEuler and FlowMatchLCM at every stored size.
TEST(FlowSchedule, ZImageAndQwenImageMatchDiffusers) {
  struct Case {
    const char* fixture;
    const char* model;
    std::vector<int> steps;
    std::vector<std::pair<int, int>> sizes;
  };
  const Case cases[] = {
      {"zimage-tiny", "zimage-tiny", {4, 8, 9, 50}, {{64, 64}, {1024, 1024}}},
      {"qwenimage-tiny", "qwenimage-tiny", {4, 8, 20, 50}, {{64, 64}, {96, 64}, {128, 128}, {1328, 1328}}}};
  int checked = 0;
  for (const Case& c : cases) {
    const std::string root = test::fixtures() + "/" + c.fixture;
    auto ref = SafetensorsFile::open(root + "/scheduler/scheduler.safetensors");
    const SchedulerConfig cfg = config(root + "/models/" + c.model);
    for (const char* cls : {"FlowMatchEulerDiscreteScheduler", "FlowMatchLCMScheduler"})
      for (int steps : c.steps)
        for (auto [w, h] : c.sizes) {
          const std::string key = std::string(cls) + ".steps" + std::to_string(steps) + "." + std::to_string(w) + "x" +
                                  std::to_string(h);
          if (!ref->has(key + ".sigmas")) continue;
          SamplerOptions o;
          o.image_seq_len = (w / 16) * (h / 16);
          o.flow_linear_sigmas = true;
          auto s = make_sampler(resolve_sampler(std::string(cls) == "FlowMatchLCMScheduler" ? "lcm" : "euler", "default", cfg, o), cfg, o);
          s->set_timesteps(steps);
          expect_schedule(*s, *ref, key);
          ++checked;
        }
  }
  EXPECT_GE(checked, 40);
}

}  // namespace
}  // namespace vg

namespace vg {
namespace {

// Wan 2.2's UniPC (flow sigmas, flow_shift 5, truncated integer timesteps) and
// the two schedulers users switch to from its config: FlowMatchEuler with
// shift 5 (float timesteps) and DPM-Solver++ 2M in flow form.
TEST(FlowSchedule, WanUniPcEulerAndDpmMatchDiffusers) {
  const std::string root = test::fixtures() + "/wan22-tiny";
  auto ref = SafetensorsFile::open(root + "/scheduler/scheduler.safetensors");
  const SchedulerConfig cfg = config(root + "/models/wan22-tiny-ti2v");
  int checked = 0;
  for (auto [name, key] : {std::pair{"unipc", "unipc"}, {"euler", "flowmatch_euler_shift5"}, {"dpmpp_2m", "dpmpp_2m_flow"}})
    for (int steps : {2, 3, 4, 6, 8, 50}) {
      SamplerOptions o;
      auto s = make_sampler(resolve_sampler(name, "default", cfg, o), cfg, o);
      s->set_timesteps(steps);
      expect_schedule(*s, *ref, std::string(key) + ".steps" + std::to_string(steps));
      ++checked;
    }
  EXPECT_EQ(checked, 18);
}

}  // namespace
}  // namespace vg
