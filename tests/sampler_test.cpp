// Samplers in isolation: stored UNet outputs and random draws from the
// fixtures, an exact "oracle" denoiser every sampler must follow to the clean
// latents, and an analytic probability-flow ODE that separates first- from
// higher-order methods.
#include <cmath>
#include <functional>

#include "backend/cpu/ops.h"
#include "sampling/philox_rng.h"
#include "sampling/sampler.h"
#include "sampling/sigma_schedules.h"
#include "sampling/torch_rng.h"
#include "test_util.h"

namespace vg {
namespace {

SchedulerConfig sd15() { return SchedulerConfig::from_json_file(test::tiny_model() + "/scheduler/scheduler_config.json"); }

using ModelFn = std::function<Tensor(const Tensor& x_in, float t)>;

Tensor run(Sampler& s, Tensor x, const ModelFn& model, Rng& rng, size_t first = 0) {
  for (size_t i = first; i < s.timesteps().size(); ++i)
    x = s.step(model(s.scale_model_input(x, i), s.timesteps()[i]), i, x, rng);
  return x;
}

// A generator that records every draw (to compare with randn_draws).
class RecordingRng : public Rng {
 public:
  explicit RecordingRng(uint64_t seed) : gen_(seed) {}
  std::vector<float> randn(int64_t n) override {
    draws.push_back(gen_.randn(n));
    return draws.back();
  }
  std::vector<std::vector<float>> draws;

 private:
  TorchCpuGenerator gen_;
};

Tensor slice(const Tensor& t, int64_t k) {
  Shape s(t.shape().begin() + 1, t.shape().end());
  return Tensor::from(s, t.data() + k * shape_numel(s));
}

// CFG of a stored [2,C,H,W] UNet output: uncond + g * (cond - uncond).
Tensor guided(const Tensor& out2, float g) {
  const int64_t n = out2.numel() / 2;
  Shape s = out2.shape();
  s[0] = 1;
  Tensor r(s);
  for (int64_t i = 0; i < n; ++i) r.data()[i] = out2.data()[i] + g * (out2.data()[n + i] - out2.data()[i]);
  return r;
}

// Feeds the stored (guided) UNet outputs with the stored previous latents:
// each step is checked on its own, so a failure points at the sampler.
void expect_steps_from_unet_out(const std::string& sampler, const std::string& dir) {
  auto ref = SafetensorsFile::open(test::tiny() + "/txt2img/" + dir + "/steps4_cfg7p5.safetensors");
  auto in = SafetensorsFile::open(test::tiny() + "/txt2img/inputs.safetensors");
  auto s = make_sampler(sampler, sd15());
  s->set_timesteps(4);
  Tensor unet_in = ref->load_f32("unet_in"), unet_out = ref->load_f32("unet_out");
  Tensor steps = ref->load_f32("step_latents");
  Tensor x = in->load_f32("initial_noise");
  scale_inplace(x, s->init_noise_sigma());
  TorchCpuGenerator rng(12345);
  for (size_t k = 0; k < 4; ++k) {
    Tensor scaled = s->scale_model_input(x, k);
    Tensor in2 = slice(unet_in, k);
    EXPECT_LE(test::max_abs_diff(scaled.data(), in2.data(), scaled.numel()), 1e-5 * test::max_abs(in2.data(), in2.numel()));
    Tensor next = s->step(guided(slice(unet_out, k), 7.5f), k, x, rng);
    Tensor want = slice(steps, k);
    EXPECT_LE(test::rel_err(next, want), 1e-5) << sampler << " step " << k;
    x = want;  // continue from the reference, not from our own result
  }
}

TEST(SamplerUnit, EulerStepsFromStoredUnetOutput) { expect_steps_from_unet_out("euler", "euler"); }
TEST(SamplerUnit, DpmppTwoMStepsFromStoredUnetOutput) { expect_steps_from_unet_out("dpmpp_2m", "dpmpp_2m"); }

// The noise each stochastic sampler draws equals diffusers' randn_draws.
void expect_draws(const std::string& sampler, const std::string& dir) {
  for (int steps : {4, 10}) {
    auto ref = SafetensorsFile::open(test::tiny() + "/txt2img/" + dir + "/steps" + std::to_string(steps) + "_cfg7p5.safetensors");
    Tensor want = ref->load_f32("randn_draws");
    auto s = make_sampler(sampler, sd15());
    s->set_timesteps(steps);
    RecordingRng rng(12345);
    Tensor x = Tensor::zeros({1, 32, 32, 4});
    run(*s, x, [](const Tensor& xi, float) { return Tensor::zeros(xi.shape()); }, rng);
    ASSERT_EQ(static_cast<int64_t>(rng.draws.size()), want.dim(0)) << sampler << " " << steps;
    for (size_t k = 0; k < rng.draws.size(); ++k) {
      Tensor w = slice(want, static_cast<int64_t>(k));
      EXPECT_EQ(test::max_abs_diff(rng.draws[k].data(), w.data(), w.numel()), 0.0) << sampler << " draw " << k;
    }
  }
}

TEST(SamplerUnit, EulerAncestralDrawsMatchStoredNoise) { expect_draws("euler_a", "euler_a"); }
TEST(SamplerUnit, DpmppTwoMSdeDrawsMatchStoredNoise) { expect_draws("dpmpp_2m_sde", "dpmpp_2m_sde"); }
TEST(SamplerUnit, LcmDrawsMatchStoredNoise) { expect_draws("lcm", "lcm"); }

// Exact model for fixed clean latents x0: given the scaled input at
// timestep t (noise level sigma(t) from the training schedule), it returns
// the true epsilon (or v). Every sampler must then end at x0, up to the
// final noise level some schedules stop at (sigma_min ~ 0.03).
struct Oracle {
  Tensor x0;
  std::vector<float> train_sigmas;
  std::string pred = "epsilon";
  bool flow = false;
  Tensor operator()(const Tensor& x_in, float t) const {
    double a, s;
    if (flow) {
      s = t / 1000.0, a = 1 - s;
    } else {
      const double sigma = interp_index(t, train_sigmas);
      a = 1 / std::sqrt(sigma * sigma + 1), s = sigma * a;
    }
    Tensor out(x_in.shape());
    for (int64_t k = 0; k < out.numel(); ++k) {
      const double eps = (x_in.data()[k] - a * x0.data()[k]) / s;
      double v = eps;
      if (flow) v = eps - x0.data()[k];
      else if (pred == "v_prediction") v = a * eps - s * x0.data()[k];
      out.data()[k] = static_cast<float>(v);
    }
    return out;
  }
};

Tensor pattern(const Shape& shape, uint64_t seed) {
  TorchCpuGenerator g(seed);
  return g.randn_nhwc(shape);
}

double oracle_error(const std::string& sampler, const std::string& schedule, const std::string& pred, int steps,
                    const SchedulerConfig& base = sd15()) {
  SchedulerConfig cfg = base;
  cfg.prediction_type = pred;
  auto s = make_sampler(sampler, cfg, schedule);
  s->set_timesteps(steps);
  Oracle o{pattern({1, 4, 4, 2}, 5), training_sigmas(alphas_cumprod(cfg)), pred, is_flow_config(cfg)};
  scale_inplace(o.x0, 0.5f);
  Tensor eps = pattern({1, 4, 4, 2}, 6);
  Tensor x = s->add_noise(o.x0, eps, 0);
  TorchCpuGenerator rng(1);
  Tensor out = run(*s, x, o, rng);
  return test::max_abs_diff(out.data(), o.x0.data(), out.numel());
}

TEST(SamplerUnit, EverySamplerFollowsAnExactDenoiserToTheCleanLatents) {
  for (const auto& id : sampler_names()) {
    if (id.rfind("flow_", 0) == 0) continue;
    for (const char* pred : {"epsilon", "v_prediction"}) {
      const int steps = (id == "lcm" || id == "tcd") ? 4 : 12;
      // 0.1 = a few times the final sigma_min (0.03) some samplers stop at;
      // formula errors give errors of order 1.
      EXPECT_LE(oracle_error(id, "default", pred, steps), 0.1) << id << " " << pred;
    }
  }
}

TEST(SamplerUnit, SigmaSchedulesKeepSamplersExact) {
  for (const char* sched : {"karras", "exponential", "beta", "normal", "simple", "sgm_uniform", "ddim_uniform", "ays"})
    for (const char* id : {"euler", "heun", "dpm2", "lms", "dpmpp_2m", "unipc", "euler_a", "dpmpp_sde"})
      EXPECT_LE(oracle_error(id, sched, "epsilon", 10), 0.1) << id << " " << sched;
}

TEST(SamplerUnit, ZeroTerminalSnrWithTrailingSpacingAndVPrediction) {
  SchedulerConfig c = sd15();
  c.rescale_betas_zero_snr = true;
  c.raw["timestep_spacing"] = "trailing";
  for (const char* id : {"ddim", "euler", "dpmpp_2m", "unipc"}) EXPECT_LE(oracle_error(id, "default", "v_prediction", 10, c), 0.1) << id;
}

// The flow forms (use_flow_sigmas, flow_prediction) of every solver that has
// one reach the clean latents of an exact velocity model; integer timesteps
// of the multistep grids leave ~1e-3.
TEST(SamplerUnit, FlowFormsFollowAnExactVelocityModel) {
  SchedulerConfig c = sd15();
  c.class_name = "FlowMatchEulerDiscreteScheduler";
  c.raw["shift"] = 3.0;
  for (const char* id : {"euler", "heun", "lcm", "dpmpp_2m", "dpmpp_3m", "unipc", "unipc_bh1"})
    EXPECT_LE(oracle_error(id, "default", "flow_prediction", 10, c), 2e-2) << id;
}

TEST(SamplerUnit, FlowMatchEulerIsExactAndShifted) {
  SchedulerConfig c = sd15();
  c.class_name = "FlowMatchEulerDiscreteScheduler";
  c.raw["shift"] = 3.0;
  EXPECT_LE(oracle_error("flow_euler", "default", "flow_prediction", 8, c), 1e-5);
  auto s = make_sampler("flow_euler", c);
  s->set_timesteps(4);
  // diffusers: linspace between the shifted endpoints, shifted again.
  auto shift = [](double x) { return 3 * x / (1 + 2 * x); };
  const double hi = shift(1.0), lo = shift(1e-3);
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(s->sigmas()[i], shift(hi + (lo - hi) * i / 3), 1e-6);
  EXPECT_NEAR(s->timesteps()[1], 1000 * s->sigmas()[1], 1e-3);
  EXPECT_EQ(s->sigmas().back(), 0.0f);
}

// Gaussian data x0 ~ N(0, 1): the exact denoiser is D(x, sigma) = x / (sigma^2 + 1)
// and the probability-flow ODE solution is x(0) = x_T / sqrt(sigma_T^2 + 1).
double ode_error(const std::string& sampler, int steps) {
  SchedulerConfig cfg = sd15();
  auto s = make_sampler(sampler, cfg, "karras");
  s->set_timesteps(steps);
  const auto ts = training_sigmas(alphas_cumprod(cfg));
  ModelFn model = [&](const Tensor& x_in, float t) {
    const double sg = interp_index(t, ts);
    Tensor e(x_in.shape());
    // x_in = x / sqrt(s^2+1); eps = (x - D) / s = x * s / (s^2 + 1)
    for (int64_t k = 0; k < e.numel(); ++k) e.data()[k] = static_cast<float>(x_in.data()[k] * sg / std::sqrt(sg * sg + 1));
    return e;
  };
  Tensor xt = pattern({1, 2, 2, 2}, 9);
  const float s0 = s->sigmas()[0];
  Tensor x = xt.clone();
  if (s->init_noise_sigma() != 1.0f) scale_inplace(x, s0);  // VE: x = sigma * noise
  else scale_inplace(x, s0 / std::sqrt(1 + s0 * s0));  // VP: x = alpha * sigma * noise
  TorchCpuGenerator rng(1);
  Tensor out = run(*s, x, model, rng);
  double err = 0;
  const double scale = s0 / std::sqrt(1.0 + s0 * s0);
  for (int64_t k = 0; k < out.numel(); ++k) err = std::max(err, std::fabs(out.data()[k] - xt.data()[k] * scale));
  return err;
}

TEST(SamplerUnit, HigherOrderSamplersBeatEulerOnAnAnalyticOde) {
  // Karras sigmas end near 0.03 for every sampler family, so the final jump
  // to sigma 0 adds little; what remains is the method's own error.
  const double euler = ode_error("euler", 20);
  EXPECT_GT(euler, 1e-2);  // the test can tell methods apart
  for (const char* id : {"heun", "dpm2", "lms", "dpmpp_2m", "dpmpp_3m", "unipc", "unipc_bh1"})
    EXPECT_LT(ode_error(id, 20), 0.2 * euler) << id;
}

TEST(Schedules, KarrasExponentialAndBetaFollowTheirFormulas) {
  auto k = karras_sigmas(0.03, 14.6, 5);
  for (int i = 0; i < 5; ++i) {
    const double r = std::pow(14.6, 1 / 7.0) + i / 4.0 * (std::pow(0.03, 1 / 7.0) - std::pow(14.6, 1 / 7.0));
    EXPECT_NEAR(k[i], std::pow(r, 7), 1e-9);
  }
  auto e = exponential_sigmas(0.03, 14.6, 5);
  for (int i = 1; i < 5; ++i) EXPECT_NEAR(e[i] / e[i - 1], std::pow(0.03 / 14.6, 0.25), 1e-9);
  // beta ppf: symmetric a = b gives 0.5 at 0.5; check the CDF by integrating the density.
  EXPECT_NEAR(beta_ppf(0.5, 0.6, 0.6), 0.5, 1e-9);
  const double x = beta_ppf(0.2, 0.6, 0.6);
  double cdf = 0, norm = 0;
  const int n = 200000;
  for (int i = 0; i < n; ++i) {
    const double u = (i + 0.5) / n, d = std::pow(u, -0.4) * std::pow(1 - u, -0.4);
    norm += d;
    if (u < x) cdf += d;
  }
  EXPECT_NEAR(cdf / norm, 0.2, 2e-3);
  auto b = beta_sigmas(0.03, 14.6, 6);
  EXPECT_NEAR(b.front(), 14.6, 1e-9);
  EXPECT_NEAR(b.back(), 0.03, 1e-9);
}

TEST(Schedules, ComfySchedulesOverTrainingSigmas) {
  const auto ts = training_sigmas(alphas_cumprod(sd15()));
  // AYS at 10 steps is the published SD1.5 list (without its final 0.029)
  auto ays = comfy_schedule("ays", ts, 10);
  EXPECT_NEAR(ays[0], 14.615, 1e-9);
  EXPECT_NEAR(ays[9], 0.152, 1e-9);
  // resampled AYS stays log-linear between the published points and keeps its ends
  auto ays20 = comfy_schedule("ays", ts, 20);
  EXPECT_NEAR(ays20[0], 14.615, 1e-9);
  EXPECT_NEAR(ays20[2], 6.475, 1e-6);
  auto simple = comfy_schedule("simple", ts, 4);  // every 250th sigma from the top
  EXPECT_FLOAT_EQ(static_cast<float>(simple[0]), ts[999]);
  EXPECT_FLOAT_EQ(static_cast<float>(simple[1]), ts[749]);
  auto normal = comfy_schedule("normal", ts, 4);  // t = 999, 666, 333, 0
  EXPECT_NEAR(normal[1], ts[666], 1e-6 * ts[666]);
  EXPECT_NEAR(normal[3], ts[0], 1e-6);
  auto sgm = comfy_schedule("sgm_uniform", ts, 4);  // t = 999, 749.25, 499.5, 249.75
  EXPECT_NEAR(sgm[2], std::exp(0.5 * std::log(ts[499]) + 0.5 * std::log(ts[500])), 1e-5);
  // sigma_to_t inverts the log-sigma interpolation
  std::vector<float> logs;
  for (float s : ts) logs.push_back(std::log(s));
  EXPECT_NEAR(sigma_to_t(ts[321], logs), 321.0, 1e-4);
}

TEST(SamplerNames, A1111ComfyAndDiffusersNamesResolve) {
  const SchedulerConfig c = sd15();
  auto r = resolve_sampler("DPM++ 2M Karras", "default", c);
  EXPECT_EQ(r.sampler, "dpmpp_2m");
  EXPECT_EQ(r.schedule, "karras");
  r = resolve_sampler("dpmpp_2m_sde", "Karras", c);
  EXPECT_EQ(r.sampler, "dpmpp_2m_sde");
  EXPECT_EQ(r.schedule, "karras");
  EXPECT_EQ(resolve_sampler("Euler a", "", c).sampler, "euler_a");
  EXPECT_EQ(resolve_sampler("euler_ancestral", "normal", c).schedule, "normal");
  EXPECT_EQ(resolve_sampler("uni_pc", "", c).sampler, "unipc_bh1");
  EXPECT_EQ(resolve_sampler("KDPM2AncestralDiscreteScheduler", "", c).sampler, "dpm2_a");
  EXPECT_TRUE(resolve_sampler("DPMSolverMultistepScheduler", "", c).class_name);
  EXPECT_EQ(resolve_sampler("default", "", c).sampler, "plms");  // the model's own PNDMScheduler
  EXPECT_THROW(resolve_sampler("no-such-sampler", "", c), VgException);
  EXPECT_THROW(resolve_sampler("euler", "no-such-schedule", c), VgException);
}

TEST(SamplerNames, UnsupportedOptionsBecomeWarnings) {
  const SchedulerConfig c = sd15();
  auto r = resolve_sampler("ddim", "karras", c);
  EXPECT_EQ(r.schedule, "default");
  ASSERT_EQ(r.warnings.size(), 1u);
  EXPECT_NE(r.warnings[0].find("karras"), std::string::npos);
  SamplerOptions o;
  o.eta = 0.5f;
  EXPECT_EQ(resolve_sampler("euler", "", c, o).warnings.size(), 1u);
  EXPECT_TRUE(resolve_sampler("ddim", "trailing", c, o).warnings.empty());  // DDIM has eta and spacings
  EXPECT_EQ(resolve_sampler("DPM++ 2M Karras", "exponential", c).warnings.size(), 1u);
}

TEST(SamplerUnit, DdimEtaDrawsNoiseAndChangesResult) {
  SchedulerConfig c = sd15();
  SamplerOptions o;
  o.eta = 1.0f;
  auto with = make_sampler(resolve_sampler("ddim", "", c, o), c, o);
  auto without = make_sampler("ddim", c);
  with->set_timesteps(5);
  without->set_timesteps(5);
  RecordingRng r1(3), r2(3);
  Tensor x = pattern({1, 2, 2, 4}, 2), m = pattern({1, 2, 2, 4}, 4);
  Tensor a = with->step(m, 1, x, r1), b = without->step(m, 1, x, r2);
  EXPECT_EQ(r1.draws.size(), 1u);
  EXPECT_TRUE(r2.draws.empty());
  EXPECT_GT(test::max_abs_diff(a.data(), b.data(), a.numel()), 1e-3);
}

}  // namespace
}  // namespace vg
