#include <filesystem>

#include "backend/cpu/ops.h"
#include "io/image_io.h"
#include "pipelines/denoise.h"
#include "pipelines/ldm_checkpoint.h"
#include "pipelines/sd_model.h"
#include "sampling/torch_rng.h"
#include "test_util.h"
#include "visiongen/visiongen.h"

namespace vg {
namespace {

const char* kPrompt = "a photograph of an astronaut riding a horse";

SdModel& tiny_model() {
  static std::unique_ptr<SdModel> m = load_sd_model(test::tiny_model());
  return *m;
}

// Decoded image in [0,1], NCHW, as the pipeline's output tensor.
Tensor decode01(SdModel& m, const Tensor& latents) {
  Tensor lat = latents.clone();
  scale_inplace(lat, 1.0f / m.vae->config().scaling_factor);
  Tensor img = nhwc_to_nchw(m.vae->decode(lat));
  for (int64_t i = 0; i < img.numel(); ++i) img.data()[i] = std::clamp(img.data()[i] / 2 + 0.5f, 0.0f, 1.0f);
  return img;
}

struct CaseRun {
  Tensor latents_final, image;
  std::vector<Tensor> step_latents;
  std::vector<float> timesteps, sigmas;
};

CaseRun run_txt2img(const std::string& sampler, int steps, float cfg, uint64_t noise_seed,
                    uint64_t gen_seed, const std::string& negative = "", int clip_skip = 1) {
  SdModel& m = tiny_model();
  const size_t bar = sampler.find('|');
  auto s = bar == std::string::npos ? make_sampler(sampler, m.scheduler)
                                    : make_sampler(sampler.substr(0, bar), m.scheduler, sampler.substr(bar + 1));
  s->set_timesteps(steps);
  Tensor cond = m.text_encoder->encode({m.tokenizer->encode_padded(kPrompt)}, clip_skip);
  Tensor uncond = cfg > 1 ? m.text_encoder->encode({m.tokenizer->encode_padded(negative)}, 1) : Tensor();
  TorchCpuGenerator noise_rng(noise_seed);
  Tensor lat = noise_rng.randn_nhwc({1, 32, 32, 4});
  scale_inplace(lat, s->init_noise_sigma());
  TorchCpuGenerator rng(gen_seed);
  CaseRun r;
  DenoiseHooks hooks;
  hooks.step_latents = &r.step_latents;
  r.latents_final = denoise(*m.unet, *s, cond, uncond, lat, cfg, rng, hooks);
  r.image = decode01(m, r.latents_final);
  r.latents_final = nhwc_to_nchw(r.latents_final);
  r.timesteps = s->timesteps();
  r.sigmas = s->sigmas();
  return r;
}

void expect_case(const CaseRun& r, const std::string& file) {
  auto ref = SafetensorsFile::open(file);
  Tensor ts = ref->load_f32("timesteps");
  ASSERT_EQ(static_cast<int64_t>(r.timesteps.size()), ts.numel()) << file;
  for (int64_t i = 0; i < ts.numel(); ++i) EXPECT_NEAR(r.timesteps[i], ts.data()[i], 1e-6 * std::fabs(ts.data()[i]) + 1e-9);
  if (ref->has("sigmas")) {
    Tensor sg = ref->load_f32("sigmas");
    ASSERT_EQ(static_cast<int64_t>(r.sigmas.size()), sg.numel());
    for (int64_t i = 0; i < sg.numel(); ++i) EXPECT_NEAR(r.sigmas[i], sg.data()[i], 1e-6 * std::fabs(sg.data()[i]) + 1e-9);
  }
  if (ref->has("step_latents")) {
    Tensor sl = ref->load_f32("step_latents");
    const int64_t per = sl.numel() / sl.dim(0);
    for (size_t k = 0; k < r.step_latents.size() && static_cast<int64_t>(k) < sl.dim(0); ++k) {
      Tensor mine = nhwc_to_nchw(r.step_latents[k]);
      Tensor theirs = Tensor::from(mine.shape(), sl.data() + k * per);
      EXPECT_LE(test::rel_err(mine, theirs), 1e-3) << file << " step " << k;
    }
  }
  EXPECT_LE(test::rel_err(r.latents_final, ref->load_f32("latents_final")), 1e-3) << file;
  EXPECT_GE(test::frac_within(r.image, ref->load_f32("image"), 1.0 / 255), 0.99) << file;
}

TEST(Txt2Img, InitialNoiseIsTorchSeed1234) {
  auto in = SafetensorsFile::open(test::tiny() + "/txt2img/inputs.safetensors");
  TorchCpuGenerator g(1234);
  Tensor n = g.randn_tensor({1, 4, 32, 32});
  EXPECT_EQ(test::max_abs_diff(n.data(), in->load_f32("initial_noise").data(), n.numel()), 0.0);
}

TEST(Txt2Img, PromptEmbeddingsMatch) {
  SdModel& m = tiny_model();
  auto in = SafetensorsFile::open(test::tiny() + "/txt2img/inputs.safetensors");
  Tensor cond = m.text_encoder->encode({m.tokenizer->encode_padded(kPrompt)}, 1);
  Tensor uncond = m.text_encoder->encode({m.tokenizer->encode_padded("")}, 1);
  EXPECT_LE(test::max_abs_diff(cond.data(), in->load_f32("prompt_embeds").data(), cond.numel()), 1e-4);
  EXPECT_LE(test::max_abs_diff(uncond.data(), in->load_f32("negative_prompt_embeds").data(), uncond.numel()), 1e-4);
}

// The four standard cases (4/10 steps x cfg 7.5/1.0) of txt2img/<dir>/.
void expect_standard_cases(const std::string& sampler, const std::string& dir) {
  for (int steps : {4, 10})
    for (float cfg : {7.5f, 1.0f}) {
      CaseRun r = run_txt2img(sampler, steps, cfg, 1234, 12345);
      expect_case(r, test::tiny() + "/txt2img/" + dir + "/steps" + std::to_string(steps) +
                         (cfg > 1 ? "_cfg7p5" : "_cfg1p0") + ".safetensors");
    }
}

TEST(Txt2Img, EulerAllCasesMatchDiffusers) { expect_standard_cases("euler", "euler"); }

TEST(Txt2Img, DdimAllCasesMatchDiffusers) { expect_standard_cases("DDIMScheduler", "ddim"); }
TEST(Txt2Img, EulerAncestralAllCasesMatchDiffusers) { expect_standard_cases("euler_a", "euler_a"); }
TEST(Txt2Img, HeunAllCasesMatchDiffusers) { expect_standard_cases("heun", "heun"); }
TEST(Txt2Img, PlmsAllCasesMatchDiffusers) { expect_standard_cases("PNDMScheduler", "pndm_plms"); }
TEST(Txt2Img, DpmppTwoMAllCasesMatchDiffusers) { expect_standard_cases("dpmpp_2m", "dpmpp_2m"); }
TEST(Txt2Img, DpmppTwoMSdeAllCasesMatchDiffusers) { expect_standard_cases("dpmpp_2m_sde", "dpmpp_2m_sde"); }
TEST(Txt2Img, DpmppTwoMKarrasAllCasesMatchDiffusers) { expect_standard_cases("DPM++ 2M Karras", "dpmpp_2m_karras"); }
TEST(Txt2Img, EulerKarrasAllCasesMatchDiffusers) { expect_standard_cases("euler|karras", "euler_karras"); }
TEST(Txt2Img, UniPcAllCasesMatchDiffusers) { expect_standard_cases("UniPCMultistepScheduler", "unipc"); }
TEST(Txt2Img, LcmAllCasesMatchDiffusers) { expect_standard_cases("lcm", "lcm"); }

TEST(Txt2Img, EulerClipSkipCaseMatches) {
  CaseRun r = run_txt2img("euler", 4, 7.5f, 1234, 12345, "", 2);
  expect_case(r, test::tiny() + "/txt2img/extra/euler_clip_skip1_steps4_cfg7p5.safetensors");
}

TEST(Txt2Img, DpmppTwoMNegativePromptCaseMatches) {
  CaseRun r = run_txt2img("dpmpp_2m", 4, 7.5f, 1234, 12345, "blurry, low quality");
  expect_case(r, test::tiny() + "/txt2img/extra/dpmpp_2m_negative_prompt_steps4_cfg7p5.safetensors");
}

TEST(Txt2Img, EulerPipelineDrawnNoiseFromSeedMatches) {
  CaseRun r = run_txt2img("euler", 4, 7.5f, 42, 42);
  expect_case(r, test::tiny() + "/txt2img/extra/euler_pipeline_drawn_noise_seed42_steps4_cfg7p5.safetensors");
}

Tensor image_to_tensor01(const Image& img) {
  Tensor t({1, 3, img.height, img.width});
  for (int c = 0; c < 3; ++c)
    for (int i = 0; i < img.width * img.height; ++i) t.data()[c * img.width * img.height + i] = img.pixels[i * 3 + c] / 255.0f;
  return t;
}

TEST(Engine, SeedAloneReproducesReferencePng) {
  auto e = Engine::load(test::tiny_model());
  ASSERT_TRUE(e) << e.error().to_string();
  GenerateParams p;
  p.prompt = kPrompt;
  p.steps = 4;
  p.cfg_scale = 7.5f;
  p.seed = 42;
  p.width = p.height = 64;
  auto r = (*e)->generate(p);
  ASSERT_TRUE(r) << r.error().to_string();
  Image ref = decode_png(read_file(test::tiny() + "/txt2img/extra/euler_pipeline_drawn_noise_seed42_steps4_cfg7p5.png"), "ref");
  EXPECT_GE(test::frac_within(image_to_tensor01(r->images[0]), image_to_tensor01(ref), 1.0 / 255 + 1e-6), 0.99);
  EXPECT_NE(r->infotext[0].find("Seed: 42"), std::string::npos);
  EXPECT_NE(r->infotext[0].find("Steps: 4, Sampler: euler, CFG scale: 7.5"), std::string::npos);
}

// The text encoder's weights are released after each prompt and recent
// embeddings cached: repeated, alternating and kept-weight runs must agree.
TEST(Engine, ReleasedTextEncoderAndEmbeddingCacheGiveTheSameImages) {
  auto released = Engine::load(test::tiny_model());
  LoadOptions keep;
  keep.keep_text_encoder = true;
  auto kept = Engine::load(test::tiny_model(), keep);
  ASSERT_TRUE(released && kept);
  GenerateParams a;
  a.prompt = kPrompt;
  a.steps = 2;
  a.seed = 3;
  a.width = a.height = 64;
  GenerateParams b = a;
  b.prompt = "a different prompt";
  b.negative_prompt = "blurry";
  auto a1 = (*released)->generate(a);
  auto b1 = (*released)->generate(b);
  auto a2 = (*released)->generate(a);  // from the embedding cache
  auto b2 = (*kept)->generate(b);
  ASSERT_TRUE(a1 && b1 && a2 && b2);
  EXPECT_EQ(a1->images[0].pixels, a2->images[0].pixels);
  EXPECT_EQ(b1->images[0].pixels, b2->images[0].pixels);
  EXPECT_NE(a1->images[0].pixels, b1->images[0].pixels);
}

TEST(Engine, LdmSingleFileGivesSameImage) {
  const std::string path = testing::TempDir() + "/tiny_ldm.safetensors";
  convert_diffusers_to_ldm(test::tiny_model(), path);
  auto f = SafetensorsFile::open(path);
  EXPECT_TRUE(f->has("model.diffusion_model.input_blocks.0.0.weight"));
  EXPECT_TRUE(f->has("first_stage_model.decoder.up.0.block.0.conv1.weight"));
  EXPECT_TRUE(f->has("cond_stage_model.transformer.text_model.final_layer_norm.weight"));
  LoadOptions lo;
  lo.tokenizer_dir = test::tiny_model() + "/tokenizer";
  auto single = Engine::load(path, lo);
  ASSERT_TRUE(single) << single.error().to_string();
  auto folder = Engine::load(test::tiny_model());
  ASSERT_TRUE(folder);
  GenerateParams p;
  p.prompt = kPrompt;
  p.steps = 4;
  p.seed = 7;
  p.width = p.height = 64;
  auto a = (*single)->generate(p);
  auto b = (*folder)->generate(p);
  ASSERT_TRUE(a) << a.error().to_string();
  ASSERT_TRUE(b);
  EXPECT_EQ(a->images[0].pixels, b->images[0].pixels);
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace vg
