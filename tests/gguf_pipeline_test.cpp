// stable-diffusion.cpp GGUF files of sd1-tiny generate diffusers' references
// (../shared/fixtures/gguf/pipelines): the q8_0 whole checkpoint via -m, the
// UNet-only q4_0 / q5_1 files via the sd1-tiny folder + --unet.
#include <regex>

#include "backend/cpu/ops.h"
#include "io/gguf.h"
#include "pipelines/denoise.h"
#include "pipelines/sd_model.h"
#include "sampling/torch_rng.h"
#include "test_util.h"
#include "visiongen/visiongen.h"

namespace vg {
namespace {

std::string gdir() { return test::fixtures() + "/gguf"; }

const nlohmann::json& gguf_manifest() { return test::fixture_manifest("gguf"); }

double rel_l2(const Tensor& a, const Tensor& ref) {
  EXPECT_EQ(a.numel(), ref.numel());
  double num = 0, den = 0;
  for (int64_t i = 0; i < std::min(a.numel(), ref.numel()); ++i) {
    const double d = static_cast<double>(a.data()[i]) - ref.data()[i];
    num += d * d;
    den += static_cast<double>(ref.data()[i]) * ref.data()[i];
  }
  return std::sqrt(num / std::max(den, 1e-30));
}

std::unique_ptr<SdModel> load_case_model(const nlohmann::json& c, bool native) {
  ScopedDequantizeBlocks dequant(!native);
  const std::string gguf = gdir() + "/" + c["gguf"].get<std::string>();
  // No KV metadata in sd.cpp files: the heads come from the folder's configs (diffusers' config=).
  if (c["gguf_kind"] == "full") return load_sd_model(gguf, "", false, test::tiny_model());
  auto m = load_sd_model(test::tiny_model());
  load_unet_file(*m, gguf, /*bf16=*/false);
  return m;
}

// native: linears computed from the blocks with int8 activations (the
// default); otherwise dequantised exactly to float32 (diffusers parity).
void run_case(const nlohmann::json& c, bool native = false) {
  const std::string name = c["name"];
  SCOPED_TRACE(name + (native ? " (native)" : " (dequant)"));
  auto ref = SafetensorsFile::open(gdir() + "/" + c["file"].get<std::string>());
  auto m = load_case_model(c, native);
  const auto& kw = c["call_kwargs"];
  const std::string cls = c["scheduler_class"];
  ASSERT_TRUE(cls == "EulerDiscreteScheduler" || cls == "DPMSolverMultistepScheduler") << cls;
  const SchedulerConfig sc = SchedulerConfig::from_json(c["scheduler_config_resolved"], name);
  auto s = make_sampler(cls, sc);
  const int steps = kw["num_inference_steps"], w = kw["width"], h = kw["height"];
  const float cfg = kw["guidance_scale"];
  s->set_timesteps(steps);
  const Tensor ts = ref->load_f32("timesteps");
  ASSERT_EQ(static_cast<int64_t>(s->timesteps().size()), ts.numel());
  for (int64_t i = 0; i < ts.numel(); ++i) EXPECT_EQ(s->timesteps()[i], ts.data()[i]);

  const std::string neg = kw["negative_prompt"].is_null() ? "" : kw["negative_prompt"].get<std::string>();
  const Tensor cond = m->text_encoder->encode({m->tokenizer->encode_padded(kw["prompt"].get<std::string>())}, 1);
  const Tensor uncond = m->text_encoder->encode({m->tokenizer->encode_padded(neg)}, 1);
  const double pe = rel_l2(cond, ref->load_f32("prompt_embeds")), ne = rel_l2(uncond, ref->load_f32("negative_prompt_embeds"));
  EXPECT_LE(pe, native ? 2e-2 : 1e-5);
  EXPECT_LE(ne, native ? 2e-2 : 1e-5);

  std::smatch sm;
  const std::string gen = kw["generator"];
  ASSERT_TRUE(std::regex_search(gen, sm, std::regex(R"(manual_seed\((\d+)\))")));
  TorchCpuGenerator g(std::stoull(sm[1].str()));
  const int64_t f = m->vae->scale();
  Tensor lat = g.randn_nhwc({1, h / f, w / f, 4});
  EXPECT_EQ(test::max_abs_diff(nhwc_to_nchw(lat).data(), ref->load_f32("initial_noise").data(), lat.numel()), 0.0);
  scale_inplace(lat, s->init_noise_sigma());
  Tensor fin = denoise(*m->unet, *s, cond, uncond, lat, cfg, g);
  const Tensor want = ref->load_f32("latents_final");
  const double lat_err = rel_l2(nhwc_to_nchw(fin), want);
  const Tensor fin_nchw = nhwc_to_nchw(fin);
  scale_inplace(fin, 1.0f / m->vae->config().scaling_factor);
  Tensor img = nhwc_to_nchw(m->vae->decode(fin));
  for (int64_t i = 0; i < img.numel(); ++i) img.data()[i] = std::clamp(img.data()[i] / 2 + 0.5f, 0.0f, 1.0f);
  const Tensor ref_img = ref->load_f32("image");
  ASSERT_EQ(img.shape(), ref_img.shape());
  const double img_err = test::max_abs_diff(img.data(), ref_img.data(), img.numel());
  if (native) {
    // README section 6: activation quantisation moves the latents by rel L2
    // ~0.03-0.05 (latents_final_actquant, a simulation of ggml's rounding).
    const double aq = rel_l2(fin_nchw, ref->load_f32("latents_final_actquant"));
    const double aq_ref = rel_l2(ref->load_f32("latents_final_actquant"), want);
    std::printf("[gguf native] %s: prompt_embeds rel L2 %.2e, latents_final rel L2 %.3f (actquant's own %.3f), vs actquant %.3f\n",
                name.c_str(), std::max(pe, ne), lat_err, aq_ref, aq);
    EXPECT_LE(lat_err, 2.5 * aq_ref);
    EXPECT_GT(lat_err, 1e-4);  // the blocks were used, not float32 copies
    EXPECT_LE(aq, 3.0 * aq_ref);
    return;
  }
  EXPECT_LE(lat_err, 3e-5);
  EXPECT_LE(img_err, 1e-4);
  // The dequantised weights matter: the float32 source weights give another result.
  if (c["gguf_kind"] != "full") EXPECT_GT(rel_l2(want, ref->load_f32("latents_final_f32_weights")), 10 * lat_err);
  std::printf("[gguf] %s: prompt_embeds rel L2 %.2e, latents_final rel L2 %.2e, image max|diff| %.2e\n", name.c_str(),
              std::max(pe, ne), lat_err, img_err);
}

// ~6 s a case here: the fast suite runs one whole-checkpoint and one --unet case.
TEST(Gguf, SdCppPipelinesQ8Q4EulerMatchDiffusers) {
  for (const auto& c : gguf_manifest()["pipelines"]["sd1"])
    if (c["name"] == "q8_0_euler_s4_cfg7p5_96x64" || c["name"] == "q4_0_dpmpp2m_s6_cfg7p5_64x96_neg") run_case(c);
}

// Native mode (the default): the same cases loosely, against the README's
// activation-quantisation figures.
TEST(Gguf, SdCppPipelinesNativeQuantCompute) {
  for (const auto& c : gguf_manifest()["pipelines"]["sd1"])
    if (c["name"] == "q8_0_euler_s4_cfg7p5_96x64" || c["name"] == "q4_0_dpmpp2m_s6_cfg7p5_64x96_neg") run_case(c, true);
}

TEST(Gguf, SdCppAllSixPipelinesMatchDiffusersSlow) {
  const auto& cases = gguf_manifest()["pipelines"]["sd1"];
  ASSERT_EQ(cases.size(), 6u);
  for (const auto& c : cases) run_case(c);
}

TEST(Gguf, EngineLoadsGgufCheckpointAndUnetFile) {
  GenerateParams p;
  p.prompt = "a red fox";
  p.steps = 2;
  p.seed = 5;
  p.width = p.height = 32;
  auto full = Engine::load(gdir() + "/models/sd1-tiny-q8_0.gguf");
  ASSERT_TRUE(full) << full.error().to_string();
  EXPECT_EQ((*full)->info().family, "sd1");
  auto r = (*full)->generate(p);
  ASSERT_TRUE(r) << r.error().to_string();
  LoadOptions lo;
  lo.unet_file = gdir() + "/models/sd1-tiny-unet-q4_0.gguf";
  auto folder_q4 = Engine::load(test::tiny_model(), lo);
  ASSERT_TRUE(folder_q4) << folder_q4.error().to_string();
  auto folder = Engine::load(test::tiny_model());
  ASSERT_TRUE(folder);
  auto a = (*folder_q4)->generate(p);
  auto b = (*folder)->generate(p);
  ASSERT_TRUE(a && b);
  EXPECT_NE(a->images[0].pixels, b->images[0].pixels);  // the q4_0 UNet was used
  // A UNet file of no UNet, and a missing one, are clear errors.
  lo.unet_file = gdir() + "/bad/valid_small.gguf";
  auto bad = Engine::load(test::tiny_model(), lo);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, ErrorCode::kUnsupportedModel);
  lo.unet_file = gdir() + "/bad/truncated_in_data.gguf";
  bad = Engine::load(test::tiny_model(), lo);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, ErrorCode::kCorruptFile);
}

}  // namespace
}  // namespace vg
