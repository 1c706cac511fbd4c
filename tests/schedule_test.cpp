// Schedules and the Euler sampler against formulas computed independently here.
#include <cmath>

#include "sampling/sampler.h"
#include "sampling/schedule.h"
#include "sampling/torch_rng.h"
#include "test_util.h"

namespace vg {
namespace {

SchedulerConfig sd15() {
  SchedulerConfig c = SchedulerConfig::from_json_file(test::tiny_model() + "/scheduler/scheduler_config.json");
  return c;
}

TEST(Schedule, AlphasCumprodMatchesDoubleFormula) {
  auto ac = alphas_cumprod(sd15());
  ASSERT_EQ(ac.size(), 1000u);
  double prod = 1;
  for (int i = 0; i < 1000; ++i) {
    double b = std::sqrt(0.00085) + (std::sqrt(0.012) - std::sqrt(0.00085)) * i / 999.0;
    prod *= 1 - b * b;
    EXPECT_NEAR(ac[i], prod, 1e-6 * prod + 1e-9) << i;
  }
}

TEST(Schedule, SpacingsFollowDiffusersRules) {
  SchedulerConfig c = sd15();
  EXPECT_EQ(spaced_timesteps(c, "leading", 4), (std::vector<float>{751, 501, 251, 1}));
  EXPECT_EQ(spaced_timesteps(c, "trailing", 4), (std::vector<float>{999, 749, 499, 249}));
  EXPECT_EQ(spaced_timesteps(c, "trailing", 3), (std::vector<float>{999, 666, 332}));  // round(1000 - k*333.33) - 1
  EXPECT_EQ(spaced_timesteps(c, "linspace", 4), (std::vector<float>{999, 666, 333, 0}));
  // multistep family: leading uses a grid of N+1 points (1000 // 5 = 200), offset 1
  EXPECT_EQ(multistep_timesteps(c, "leading", 4), (std::vector<float>{801, 601, 401, 201}));
  EXPECT_EQ(multistep_timesteps(c, "linspace", 4), (std::vector<float>{999, 749, 500, 250}));  // round(999*k/4), half to even
  EXPECT_EQ(multistep_timesteps(c, "trailing", 4), (std::vector<float>{999, 749, 499, 249}));
}

TEST(Euler, InitSigmaDependsOnSpacing) {
  SchedulerConfig c = sd15();
  auto s = make_sampler("euler", c);
  s->set_timesteps(4);
  const float smax = s->sigmas()[0];
  EXPECT_NEAR(s->init_noise_sigma(), std::sqrt(smax * smax + 1), 1e-6);
  c.raw["timestep_spacing"] = "trailing";
  auto t = make_sampler("EulerDiscreteScheduler", c);
  t->set_timesteps(4);
  EXPECT_FLOAT_EQ(t->init_noise_sigma(), t->sigmas()[0]);
  EXPECT_FLOAT_EQ(t->sigmas().back(), 0.0f);
  // sigma at t=999 is sqrt((1-abar)/abar) of the last training step.
  auto ac = alphas_cumprod(c);
  EXPECT_NEAR(t->sigmas()[0], std::sqrt((1 - ac[999]) / ac[999]), 1e-5);
}

TEST(Euler, EpsilonAndVPredictionSteps) {
  for (const char* pred : {"epsilon", "v_prediction"}) {
    SchedulerConfig c = sd15();
    c.prediction_type = pred;
    auto s = make_sampler("euler", c);
    s->set_timesteps(10);
    Tensor x({1, 2, 2, 1}), m({1, 2, 2, 1});
    for (int i = 0; i < 4; ++i) x.data()[i] = 0.5f * i - 1, m.data()[i] = 0.3f - 0.2f * i;
    TorchCpuGenerator rng(0);  // unused by Euler with s_churn 0 beyond its draw
    Tensor y = s->step(m, 3, x, rng);
    const double sg = s->sigmas()[3], next = s->sigmas()[4];
    for (int i = 0; i < 4; ++i) {
      const double xi = x.data()[i], mi = m.data()[i];
      // x0 for v-prediction: c_skip * x + c_out * v with c_skip = 1/(s^2+1), c_out = -s/sqrt(s^2+1)
      const double x0 = std::string(pred) == "epsilon" ? xi - sg * mi : xi / (sg * sg + 1) - sg / std::sqrt(sg * sg + 1) * mi;
      EXPECT_NEAR(y.data()[i], xi + (xi - x0) / sg * (next - sg), 1e-5) << pred;
    }
  }
}

TEST(Euler, AddNoiseUsesSigma) {
  auto s = make_sampler("euler", sd15());
  s->set_timesteps(10);
  Tensor x0 = Tensor::zeros({1, 1, 1, 2}), n({1, 1, 1, 2});
  n.data()[0] = 1, n.data()[1] = -2;
  Tensor y = s->add_noise(x0, n, 2);
  EXPECT_FLOAT_EQ(y.data()[0], s->sigmas()[2]);
  EXPECT_FLOAT_EQ(y.data()[1], -2 * s->sigmas()[2]);
}

TEST(Schedule, ZeroTerminalSnrRescale) {
  SchedulerConfig c = sd15();
  c.rescale_betas_zero_snr = true;
  auto ac = alphas_cumprod(c);
  auto plain = alphas_cumprod(sd15());
  EXPECT_NEAR(ac[0], plain[0], 1e-6);   // first step unchanged
  EXPECT_LT(ac[999], 1e-7);             // last step has (almost) zero SNR
  EXPECT_GT(ac[999], 0.0f);
}

TEST(Sampler, UnknownNameIsInvalidArgument) {
  try {
    make_sampler("definitely-not", sd15());
    FAIL();
  } catch (const VgException& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  }
}

}  // namespace
}  // namespace vg
