// The planned activation arena: the planner's offsets, and the UNet taking
// its step's tensors from a plan made by a dry run before the first step.
#include <random>

#include "backend/cpu/bf16.h"
#include "core/arena.h"
#include "io/weights.h"
#include "models/autoencoder_kl.h"
#include "models/unet.h"
#include "test_util.h"

namespace vg {
namespace {

TEST(Arena, PlannerNeverGivesLiveAllocationsTheSameBytes) {
  std::mt19937 rng(7);
  for (int round = 0; round < 20; ++round) {
    std::vector<AllocRecord> trace;
    int64_t clock = 0;
    std::vector<size_t> open;
    for (int k = 0; k < 60; ++k) {  // random interleaving of allocations and frees
      if (!open.empty() && rng() % 3 == 0) {
        const size_t j = rng() % open.size();
        trace[open[j]].free_t = ++clock;
        open.erase(open.begin() + static_cast<std::ptrdiff_t>(j));
      } else {
        trace.push_back(AllocRecord{4096 * (1 + rng() % 50), ++clock, 0});
        open.push_back(trace.size() - 1);
      }
    }
    const int64_t end = clock;
    for (size_t j : open) trace[j].free_t = ++clock;  // still alive when the pass returned: results
    const ArenaPlan plan = plan_arena(trace, end);
    size_t total = 0;
    for (size_t i = 0; i < trace.size(); ++i) {
      const bool result = trace[i].free_t > end;
      EXPECT_EQ(plan.bytes[i] == 0, result) << i;
      total += plan.bytes[i];
      if (!result) EXPECT_LE(plan.offset[i] + plan.bytes[i], plan.arena_bytes);
      for (size_t j = 0; j < i; ++j) {
        if (!plan.bytes[i] || !plan.bytes[j]) continue;
        const bool together = trace[i].alloc_t < trace[j].free_t && trace[j].alloc_t < trace[i].free_t;
        const bool share = plan.offset[i] < plan.offset[j] + plan.bytes[j] && plan.offset[j] < plan.offset[i] + plan.bytes[i];
        EXPECT_FALSE(together && share) << "allocations " << i << " and " << j << " overlap while both alive";
      }
    }
    EXPECT_GE(plan.arena_bytes, plan.live_peak_bytes);
    EXPECT_LE(plan.arena_bytes, total);
  }
}

class UNetArena : public ::testing::Test {
 protected:
  void SetUp() override {
    auto w = open_component_weights(test::tiny_model() + "/unet", "unet");
    unet = std::make_unique<UNet>(UNetConfig::from_json_file(test::tiny_model() + "/unet/config.json"), w);
    x = Tensor::zeros({2, 16, 16, 4});
    for (int64_t i = 0; i < x.numel(); ++i) x.data()[i] = static_cast<float>((i * 37) % 101) / 50.0f - 1.0f;
    ctx = Tensor::zeros({2, 77, 32});
    for (int64_t i = 0; i < ctx.numel(); ++i) ctx.data()[i] = static_cast<float>((i * 13) % 29) / 14.0f - 1.0f;
  }
  std::unique_ptr<UNet> unet;
  Tensor x, ctx;
};

TEST_F(UNetArena, DryRunPredictsTheRealStepExactly) {
  EXPECT_FALSE(unet->arena_stats().has_value());
  Tensor first = unet->forward(x, {500.0f}, ctx);
  auto st = unet->arena_stats();
  ASSERT_TRUE(st.has_value());  // planned before the first real pass ran
  EXPECT_GT(st->allocations, 50u);
  EXPECT_EQ(st->missed, 0u) << "the real pass asked for other sizes or another order than the dry run";
  EXPECT_GE(st->arena_bytes, st->live_peak_bytes);
  first = Tensor();
  const size_t before = tensor_pool_stats().fresh_allocations;
  for (int i = 0; i < 3; ++i) unet->forward(x, {400.0f - i}, ctx);
  EXPECT_EQ(unet->arena_stats()->missed, 0u);
  EXPECT_EQ(tensor_pool_stats().fresh_allocations, before);  // steady steps allocate nothing
}

TEST_F(UNetArena, Bf16StepIsPredictedExactlyAndRepeatable) {
  if (!cpu_can_bf16()) GTEST_SKIP() << "no AVX-512";
  auto w = open_component_weights(test::tiny_model() + "/unet", "unet");
  w.set_compute_bf16(true);
  UNet bf(UNetConfig::from_json_file(test::tiny_model() + "/unet/config.json"), w);
  Tensor a = bf.forward(x, {500.0f}, ctx).clone();
  EXPECT_EQ(bf.arena_stats()->missed, 0u);
  Tensor b = bf.forward(x, {500.0f}, ctx);
  EXPECT_EQ(test::max_abs_diff(a.data(), b.data(), a.numel()), 0.0);
}

TEST_F(UNetArena, HeldResultsOfEarlierStepsAreNeverOverwritten) {
  // Multistep samplers keep earlier model outputs: the arena must not hand
  // their bytes to the next step (it falls back to the pool instead).
  std::vector<Tensor> held, copies;
  for (int i = 0; i < 4; ++i) {
    held.push_back(unet->forward(x, {900.0f - 100.0f * i}, ctx));
    copies.push_back(held.back().clone());
  }
  for (size_t i = 0; i < held.size(); ++i)
    EXPECT_EQ(test::max_abs_diff(held[i].data(), copies[i].data(), held[i].numel()), 0.0) << i;
  // and the values are those of independent passes
  held.clear();
  for (int i = 0; i < 4; ++i) {
    Tensor again = unet->forward(x, {900.0f - 100.0f * i}, ctx);
    EXPECT_EQ(test::max_abs_diff(again.data(), copies[i].data(), again.numel()), 0.0) << i;
  }
}

TEST_F(UNetArena, TrimFreesTheArenaAndTheNextStepMakesItAgain) {
  Tensor a = unet->forward(x, {500.0f}, ctx).clone();
  tensor_pool_trim();
  Tensor b = unet->forward(x, {500.0f}, ctx);
  EXPECT_EQ(test::max_abs_diff(a.data(), b.data(), a.numel()), 0.0);
  EXPECT_EQ(unet->arena_stats()->missed, 0u);
}

TEST(VaeArena, DecodeAndEncodeArePlannedBeforeTheyRunAndRepeatExactly) {
  auto w = open_component_weights(test::tiny_model() + "/vae", "vae");
  AutoencoderKL vae(VaeConfig::from_json_file(test::tiny_model() + "/vae/config.json"), w);
  Tensor z = Tensor::zeros({1, 16, 16, 4});
  for (int64_t i = 0; i < z.numel(); ++i) z.data()[i] = static_cast<float>((i * 7) % 23) / 11.0f - 1.0f;
  EXPECT_FALSE(vae.decode_arena_stats().has_value());
  Tensor a = vae.decode(z).clone();
  auto st = vae.decode_arena_stats();
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->missed, 0u);
  EXPECT_GE(st->arena_bytes, st->live_peak_bytes);
  Tensor b = vae.decode(z);  // the buffer was released after the first decode and is made again
  EXPECT_EQ(test::max_abs_diff(a.data(), b.data(), a.numel()), 0.0);
  Tensor tiled = vae.decode_tiled(Tensor::zeros({1, 40, 40, 4}), 16, 0.25f);  // other tile shapes: own plans
  EXPECT_EQ(tiled.dim(1), 40 * vae.scale());
  EXPECT_EQ(vae.decode_arena_stats()->missed, 0u);
  // The encoder too (image-to-image, inpainting).
  Tensor img = vae.decode(z);
  Posterior p1 = vae.encode(img);
  ASSERT_TRUE(vae.encode_arena_stats().has_value());
  EXPECT_EQ(vae.encode_arena_stats()->missed, 0u);
  Posterior p2 = vae.encode(img);
  EXPECT_EQ(test::max_abs_diff(p1.mean.data(), p2.mean.data(), p1.mean.numel()), 0.0);
}

}  // namespace
}  // namespace vg
