// SDXL parity with ../shared/fixtures/sdxl-tiny (diffusers 0.40): text
// encoders, UNet with added conditioning, and every whole-pipeline case
// through the engine (presets off, the same seeds as the references).
#include <filesystem>

#include "backend/cpu/ops.h"
#include "io/image_decode.h"
#include "io/image_io.h"
#include "io/weights.h"
#include "pipelines/family_engine.h"
#include "pipelines/sd_model.h"
#include "sampling/sampler.h"
#include "sampling/torch_rng.h"
#include "test_util.h"
#include "visiongen/visiongen.h"

namespace vg {
namespace {

std::string xl() { return test::fixtures() + "/sdxl-tiny"; }
std::string xl_model(const std::string& name = "sdxl-tiny") { return xl() + "/models/" + name; }

const nlohmann::json& xl_manifest() { return test::fixture_manifest("sdxl-tiny"); }

std::vector<int32_t> ids_of(const Tensor& t) {
  std::vector<int32_t> v;
  for (int64_t i = 0; i < t.numel(); ++i) v.push_back(static_cast<int32_t>(t.data()[i]));
  return v;
}

TEST(SdxlText, BothEncodersMatchTransformers) {
  auto m = load_sd_model(xl_model());
  ASSERT_EQ(m->info.family, "sdxl");
  auto ref = SafetensorsFile::open(xl() + "/text_encoder/text_encoders.safetensors");
  for (const char* c : {"short", "long", "punctuation"}) {
    const std::string k = c;
    // tokenizers: the fixture's ids
    auto ids1 = ids_of(ref->load_f32(k + ".te1.input_ids"));
    auto ids2 = ids_of(ref->load_f32(k + ".te2.input_ids"));
    Tensor hs1 = ref->load_f32(k + ".te1.hidden_states"), hs2 = ref->load_f32(k + ".te2.hidden_states");
    const int64_t per1 = hs1.numel() / hs1.dim(0), per2 = hs2.numel() / hs2.dim(0);
    const int64_t n1 = m->text_encoder->config().num_layers, n2 = m->text_encoder_2->config().num_layers;
    Tensor h1 = m->text_encoder->hidden_and_pooled({ids1}, n1 - 1, nullptr);
    EXPECT_LE(test::max_abs_diff(h1.data(), hs1.data() + (n1 - 1) * per1, per1), 1e-4) << c;
    Tensor last1 = m->text_encoder->encode({ids1}, 1);
    EXPECT_LE(test::rel_err(last1, ref->load_f32(k + ".te1.last_hidden_state")), 1e-4) << c;
    Tensor pooled;
    Tensor h2 = m->text_encoder_2->hidden_and_pooled({ids2}, n2 - 1, &pooled);
    EXPECT_LE(test::max_abs_diff(h2.data(), hs2.data() + (n2 - 1) * per2, per2), 1e-4) << c;
    EXPECT_LE(test::rel_err(pooled, ref->load_f32(k + ".te2.text_embeds")), 1e-4) << c;
  }
}

TEST(SdxlText, TokenizersMatchBothConfigs) {
  auto m = load_sd_model(xl_model());
  auto ref = SafetensorsFile::open(xl() + "/tokenizer/tokens.safetensors");
  const auto& cases = xl_manifest()["stages"]["tokenizer"]["cases"];
  ASSERT_FALSE(cases.empty());
  for (auto it = cases.begin(); it != cases.end(); ++it) {
    const std::string prompt = it.value()["prompt"].get<std::string>();
    EXPECT_EQ(m->tokenizer->encode_padded(prompt), ids_of(ref->load_f32(it.key() + ".tokenizer.input_ids"))) << it.key();
    EXPECT_EQ(m->tokenizer_2->encode_padded(prompt), ids_of(ref->load_f32(it.key() + ".tokenizer_2.input_ids")))
        << it.key();
  }
}

// tol_b2: the B=2 12x20 group (the fixture README's noise floor there is
// ~4e-5 absolute between 1 and 2 torch threads for the base; the refiner's
// output is larger and its error spread evenly, measured 3.3e-4 relative).
void expect_unet(const std::string& which, const std::string& folder, double tol_b2 = 1e-4) {
  UNet unet(UNetConfig::from_json_file(folder + "/unet/config.json"), open_component_weights(folder + "/unet", "unet"));
  auto ref = SafetensorsFile::open(xl() + "/unet/unet.safetensors");
  for (const char* g : {"b1_16x16", "b2_12x20"})
    for (const char* t : {"t999", "t421p5"}) {
      const std::string p = which + "." + g + ".";
      Tensor sample = nchw_to_nhwc(ref->load_f32(p + "sample"));
      const float ts = ref->load_f32(p + t + ".timestep").data()[0];
      AddedCond added{ref->load_f32(p + "text_embeds"), ref->load_f32(p + "time_ids")};
      Tensor tp;
      Tensor aug = unet.added_embedding(added, &tp);
      EXPECT_LE(test::rel_err(aug, ref->load_f32(p + t + ".aug_emb")), 1e-4) << p << t;
      EXPECT_LE(test::rel_err(tp, ref->load_f32(p + t + ".add_time_proj")), 1e-5) << p << t;
      Tensor out = nhwc_to_nchw(unet.forward(sample, {ts}, ref->load_f32(p + "encoder_hidden_states"), added));
      EXPECT_LE(test::rel_err(out, ref->load_f32(p + t + ".out")), std::string(g) == "b2_12x20" ? tol_b2 : 1e-4) << p << t;
    }
}

TEST(SdxlUNet, BaseMatchesDiffusers) { expect_unet("unet", xl_model()); }
TEST(SdxlUNet, RefinerMatchesDiffusers) { expect_unet("refiner_unet", xl_model("sdxl-tiny-refiner"), 5e-4); }
TEST(SdxlUNet, InpaintMatchesDiffusers) { expect_unet("inpaint_unet", xl_model("sdxl-tiny-inpaint")); }

// ---- whole pipelines ----

const nlohmann::json& case_of(const std::string& file) {
  for (const auto& c : xl_manifest()["pipelines"]["cases"])
    if (c["file"] == file) return c;
  throw std::runtime_error("no manifest case " + file);
}

std::string pair_str(const nlohmann::json& v, char sep) {  // diffusers (a, b) -> "b<sep>a"
  return std::to_string(v[1].get<int>()) + sep + std::to_string(v[0].get<int>());
}

// GenerateParams for a manifest case: diffusers' kwargs in visiongen's names.
GenerateParams params_for(const nlohmann::json& c) {
  const auto& k = c["call_kwargs"];
  GenerateParams p;
  p.prompt = k["prompt"];
  if (k.contains("negative_prompt")) {
    p.negative_prompt = k["negative_prompt"];
    p.set_fields.push_back("negative_prompt");
  }
  p.prompt_2 = k.value("prompt_2", "");
  p.negative_prompt_2 = k.value("negative_prompt_2", "");
  p.steps = k["num_inference_steps"];
  p.cfg_scale = k["guidance_scale"];
  p.seed = c["seed"];
  p.width = k.value("width", 0);
  p.height = k.value("height", 0);
  if (k.contains("clip_skip")) p.clip_skip = k["clip_skip"].get<int>() + 1;  // diffusers' count -> A1111's
  if (k.contains("strength")) p.strength = k["strength"];
  // diffusers' inpaint pipelines default to strength 0.9999 (not 1: noise is added to the image latents)
  else if (c["pipeline_class"].get<std::string>().find("Inpaint") != std::string::npos) p.strength = 0.9999f;
  if (k.contains("aesthetic_score")) p.aesthetic_score = k["aesthetic_score"];
  if (k.contains("negative_aesthetic_score")) p.negative_aesthetic_score = k["negative_aesthetic_score"];
  if (k.contains("original_size")) p.original_size = pair_str(k["original_size"], 'x');
  if (k.contains("target_size")) p.target_size = pair_str(k["target_size"], 'x');
  if (k.contains("crops_coords_top_left")) p.crop_coords = pair_str(k["crops_coords_top_left"], ',');
  if (k.contains("negative_original_size")) p.negative_original_size = pair_str(k["negative_original_size"], 'x');
  if (k.contains("negative_target_size")) p.negative_target_size = pair_str(k["negative_target_size"], 'x');
  if (k.contains("negative_crops_coords_top_left"))
    p.negative_crop_coords = pair_str(k["negative_crops_coords_top_left"], ',');
  const std::string sched = c["scheduler_class"];
  if (c["scheduler_config_resolved"].value("timestep_spacing", "") == "trailing") p.scheduler = "trailing";  // Turbo's config
  if (sched == "EulerDiscreteScheduler") p.sampler = "euler";
  if (sched == "EulerAncestralDiscreteScheduler") p.sampler = "euler_a";
  if (sched == "DPMSolverMultistepScheduler") p.sampler = "DPM++ 2M Karras";
  if (k.contains("image") && k["image"].get<std::string>().rfind("inputs/", 0) == 0) p.init_image = xl() + "/" + k["image"].get<std::string>();
  if (k.contains("mask_image")) p.mask = xl() + "/" + k["mask_image"].get<std::string>();
  p.paste_back = "off";  // diffusers returns the raw decode
  return p;
}

struct XlRun {
  GenerateResult result;
  EngineTrace trace;
};

XlRun run_case(const std::string& model, GenerateParams p) {
  auto e = make_sdxl_engine(load_sd_model(model), LoadOptions{});
  XlRun r;
  e->set_trace(&r.trace);
  Status v = validate_params(p);
  EXPECT_TRUE(v) << v.error().to_string();
  Status s = e->validate(p, ImageInputs{});
  EXPECT_TRUE(s) << s.error().to_string();
  r.result = e->generate(p, ImageInputs{}, nullptr);
  return r;
}

void expect_matches(const XlRun& r, const std::string& file, double step_tol = 1e-3, double final_tol = 1e-3,
                    double image_frac = 0.99) {
  auto ref = SafetensorsFile::open(xl() + "/" + file);
  EXPECT_LE(test::rel_err(r.trace.context, ref->load_f32("unet0.encoder_hidden_states")), 1e-4) << file;
  EXPECT_LE(test::rel_err(r.trace.text_embeds, ref->load_f32("unet0.text_embeds")), 1e-4) << file;
  EXPECT_EQ(test::max_abs_diff(r.trace.time_ids.data(), ref->load_f32("unet0.time_ids").data(), r.trace.time_ids.numel()), 0) << file;
  if (ref->has("unet0.sample") && !r.trace.unet_inputs.empty())
    EXPECT_LE(test::rel_err(nhwc_to_nchw(r.trace.unet_inputs[0]), ref->load_f32("unet0.sample")), 1e-5) << file << " unet0.sample";
  Tensor sl = ref->load_f32("step_latents");
  ASSERT_EQ(static_cast<int64_t>(r.trace.step_latents.size()), sl.dim(0)) << file;
  const int64_t per = sl.numel() / sl.dim(0);
  for (int64_t k = 0; k < sl.dim(0); ++k) {
    Tensor mine = nhwc_to_nchw(r.trace.step_latents[k]);
    if (std::getenv("VG_TEST_VERBOSE"))
      std::printf("%s step %lld: %.3g\n", file.c_str(), static_cast<long long>(k), test::rel_err(mine, Tensor::from(mine.shape(), sl.data() + k * per)));
    EXPECT_LE(test::rel_err(mine, Tensor::from(mine.shape(), sl.data() + k * per)), k + 1 < sl.dim(0) ? step_tol : final_tol)
        << file << " step " << k;
  }
  EXPECT_LE(test::rel_err(nhwc_to_nchw(r.trace.step_latents.back()), ref->load_f32("latents_final")), final_tol) << file;
  if (!ref->has("image")) return;
  ASSERT_EQ(r.result.images.size(), 1u);
  Tensor png = test::image01(decode_png(read_file(xl() + "/" + file.substr(0, file.size() - 12) + ".png"), "ref"));
  EXPECT_GE(test::frac_within(test::image01(r.result.images[0]), png, 1.0 / 255 + 1e-6), image_frac) << file;
}

void expect_pipeline(const std::string& file, const std::string& model = "sdxl-tiny") {
  XlRun r = run_case(xl_model(model), params_for(case_of(file)));
  expect_matches(r, file);
}

TEST(SdxlPipeline, EulerZeroNegativeMatches) { expect_pipeline("pipelines/txt2img/euler_s4_cfg5_128x128.safetensors"); }
TEST(SdxlPipeline, EulerNegativeNonSquareMatches) { expect_pipeline("pipelines/txt2img/euler_s8_cfg5_neg_128x96.safetensors"); }
TEST(SdxlPipeline, CfgOffMatches) { expect_pipeline("pipelines/txt2img/euler_s4_cfg1_96x128.safetensors"); }
TEST(SdxlPipeline, EulerAncestralMatches) { expect_pipeline("pipelines/txt2img/euler_a_s6_cfg5_neg_128x96.safetensors"); }
TEST(SdxlPipeline, MicroConditioningMatches) { expect_pipeline("pipelines/txt2img/euler_s4_cfg5_microcond_128x96.safetensors"); }
TEST(SdxlPipeline, ClipSkipMatches) { expect_pipeline("pipelines/txt2img/euler_s4_cfg5_clipskip1_128x128.safetensors"); }

TEST(SdxlPipeline, TurboOneStepMatches) { expect_pipeline("pipelines/turbo/euler_a_trailing_s1_cfg0_128x128.safetensors"); }
TEST(SdxlPipeline, TurboTwoStepsMatch) { expect_pipeline("pipelines/turbo/euler_a_trailing_s2_cfg0_128x128.safetensors"); }
// Image-to-image and inpainting on this random tiny UNet amplify float noise
// ~100x per step (measured: a 1e-7 nudge of the step-0 input moves its output
// by 1e-4, and torch's one-pass channels-last GroupNorm variance carries
// rounding noise of 4e-4), so free-running latents drift from the reference
// after the first step whatever the implementation. What is checked instead:
// the first step free-running, then every later step restarted from the
// reference's previous latents (teacher forcing) with our sampler, UNet and
// conditioning; the free-running result is printed.
void expect_edit_case(const std::string& model, GenerateParams p, const std::string& file, double tol = 1e-3,
                      bool text_to_image = false) {
  XlRun r = run_case(xl_model(model), p);
  auto ref = SafetensorsFile::open(xl() + "/" + file);
  EXPECT_LE(test::rel_err(r.trace.context, ref->load_f32("unet0.encoder_hidden_states")), 1e-4) << file;
  EXPECT_LE(test::rel_err(r.trace.text_embeds, ref->load_f32("unet0.text_embeds")), 1e-4) << file;
  ASSERT_FALSE(r.trace.unet_inputs.empty());
  Tensor in0 = r.trace.unet_inputs[0];
  EXPECT_LE(test::rel_err(nhwc_to_nchw(in0), ref->load_f32("unet0.sample")), 1e-5) << file;
  Tensor sl = ref->load_f32("step_latents");
  const int64_t n = sl.dim(0), per = sl.numel() / n;
  ASSERT_EQ(static_cast<int64_t>(r.trace.step_latents.size()), n) << file;
  auto ref_step = [&](int64_t k) { return nchw_to_nhwc(Tensor::from({1, sl.dim(2), sl.dim(3), sl.dim(4)}, sl.data() + k * per)); };
  EXPECT_LE(test::rel_err(r.trace.step_latents[0], ref_step(0)), tol) << file << " step 0";
  // teacher-forced steps 1..n-1
  auto m = load_sd_model(xl_model(model));
  const int64_t lc = m->vae->config().latent_channels;
  const bool nine = m->unet->config().in_channels == 2 * lc + 1;
  Tensor extra;  // 9-channel UNets: mask + masked-image latents, the same every step
  if (nine) {
    Tensor row = Tensor::from({1, in0.dim(1), in0.dim(2), in0.dim(3)}, in0.data());
    extra = Tensor({1, row.dim(1), row.dim(2), row.dim(3) - lc});
    for (int64_t px = 0; px < row.dim(1) * row.dim(2); ++px)
      std::copy_n(row.data() + px * row.dim(3) + lc, row.dim(3) - lc, extra.data() + px * extra.dim(3));
  }
  SamplerChoice choice = resolve_sampler(p.sampler, p.scheduler, m->scheduler, SamplerOptions{});
  auto s = make_sampler(choice, m->scheduler, SamplerOptions{});
  s->set_timesteps(p.steps);
  const size_t first = s->timesteps().size() - static_cast<size_t>(n);
  TorchChannelsLastGroupNorm cl(!nine && !text_to_image);  // as the engine runs image-to-image
  TorchCpuGenerator rng(0);
  AddedCond added{r.trace.text_embeds, r.trace.time_ids};
  Tensor x = r.trace.step_latents[0];
  for (int64_t k = 1; k < n; ++k) {
    const size_t i = first + static_cast<size_t>(k);
    x = ref_step(k - 1);
    Tensor in = s->scale_model_input(x, i);
    if (nine) in = concat_channels(in, extra);
    Tensor out = m->unet->forward(concat_batch(in, in), {s->timesteps()[i]}, r.trace.context, added);
    const int64_t cnt = x.numel();
    Tensor g(x.shape());
    for (int64_t q = 0; q < cnt; ++q) g.data()[q] = out.data()[q] + p.cfg_scale * (out.data()[cnt + q] - out.data()[q]);
    x = s->step(g, i, x, rng);
    const double e = test::rel_err(x, ref_step(k));
    // A multistep sampler's first restarted call lacks the model output of call 0 (not run here).
    const bool multistep = choice.sampler.find("dpmpp") != std::string::npos || choice.sampler.find("unipc") != std::string::npos;
    if (!(multistep && k == 1)) EXPECT_LE(e, tol) << file << " teacher-forced step " << k;
    if (std::getenv("VG_TEST_VERBOSE")) std::printf("%s teacher-forced step %lld: %.3g\n", file.c_str(), static_cast<long long>(k), e);
  }
  std::printf("%s free-running: final latents %.3g relative, image max diff %.3g\n", file.c_str(),
              test::rel_err(nhwc_to_nchw(r.trace.step_latents.back()), ref->load_f32("latents_final")),
              test::max_abs_diff(test::image01(r.result.images[0]).data(), ref->load_f32("image").data(), ref->load_f32("image").numel()));
}

TEST(SdxlPipelineSlow, DpmppKarrasWithPrompt2Matches) {
  // The fixture README: this case amplifies float noise (1 vs 2 torch threads: 6.8e-2 final latents).
  const std::string file = "pipelines/txt2img/dpmpp2m_karras_s6_cfg5_prompt2_96x128.safetensors";
  expect_edit_case("sdxl-tiny", params_for(case_of(file)), file, 1e-3, /*text_to_image=*/true);
}

TEST(SdxlPipelineSlow, Img2ImgMatches) {
  const std::string file = "pipelines/img2img/euler_strength0p6_s10_cfg5_128x96.safetensors";
  expect_edit_case("sdxl-tiny", params_for(case_of(file)), file);
}
TEST(SdxlPipelineSlow, RefinerImg2ImgMatches) {
  const std::string file = "pipelines/refiner/aesthetic7_neg2_strength0p3_s10_cfg5_128x96.safetensors";
  expect_edit_case("sdxl-tiny-refiner", params_for(case_of(file)), file);
}
TEST(SdxlPipelineSlow, NineChannelInpaintMatches) {
  const std::string file = "pipelines/inpaint/euler_strength0p9999_s10_cfg5_128x96.safetensors";
  GenerateParams p = params_for(case_of(file));
  p.width = p.height = 128;  // diffusers' default size for this UNet (no size given)
  expect_edit_case("sdxl-tiny-inpaint", p, file);
}
TEST(SdxlPipelineSlow, NineChannelInpaintDpmppMatches) {
  const std::string file = "pipelines/inpaint/dpmpp2m_karras_strength0p7_s8_cfg5_128x96.safetensors";
  GenerateParams p = params_for(case_of(file));
  p.width = p.height = 128;
  expect_edit_case("sdxl-tiny-inpaint", p, file);
}

TEST(SdxlPipelineSlow, BaseToRefinerHandoffMatchesTheEnsemble) {
  const std::string base = "pipelines/ensemble/base_euler_s10_cfg5_dend0p8_128x128.safetensors";
  const std::string file = "pipelines/ensemble/refiner_euler_s10_cfg5_dstart0p8_128x128.safetensors";
  GenerateParams p = params_for(case_of(base));
  p.refiner = xl_model("sdxl-tiny-refiner");
  p.refiner_switch = 0.8f;
  XlRun r = run_case(xl_model(), p);
  auto bref = SafetensorsFile::open(xl() + "/" + base);
  auto rref = SafetensorsFile::open(xl() + "/" + file);
  const int64_t nb = bref->load_f32("step_latents").dim(0), nr = rref->load_f32("step_latents").dim(0);
  ASSERT_EQ(static_cast<int64_t>(r.trace.step_latents.size()), nb + nr);
  // the fixture README's tolerance for these pipelines' latents: 2e-3 (measured 1.1e-3)
  EXPECT_LE(test::rel_err(nhwc_to_nchw(r.trace.step_latents[nb - 1]), bref->load_f32("latents_final")), 2e-3);
  EXPECT_LE(test::rel_err(nhwc_to_nchw(r.trace.final_latents), rref->load_f32("latents_final")), 2e-3);
  Tensor png = test::image01(decode_png(read_file(xl() + "/pipelines/ensemble/refiner_euler_s10_cfg5_dstart0p8_128x128.png"), "ref"));
  EXPECT_GE(test::frac_within(test::image01(r.result.images[0]), png, 1.0 / 255 + 1e-6), 0.99);
}

TEST(SdxlPipeline, RefinerThatIsNotARefinerIsRefused) {
  GenerateParams p = params_for(case_of("pipelines/txt2img/euler_s4_cfg5_128x128.safetensors"));
  p.refiner = xl_model();  // a base model
  auto e = Engine::load(xl_model());
  ASSERT_TRUE(e);
  auto r = (*e)->generate(p);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(r.error().message.find("not an SDXL refiner"), std::string::npos) << r.error().message;
  p.refiner = test::tiny_model();  // SD1
  r = (*e)->generate(p);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("sd1"), std::string::npos) << r.error().message;
}

TEST(SdxlPipeline, SizesTheModelCannotTakeAreRefused) {
  auto e = Engine::load(xl_model());
  ASSERT_TRUE(e);
  GenerateParams p;
  p.prompt = "x";
  p.width = 100;  // not a multiple of 32 (8 x 2^(levels-1))
  p.height = 128;
  Status s = (*e)->validate(p);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(s.error().message.find("multiples of"), std::string::npos);
  p.width = 128;
  p.original_size = "12x";
  EXPECT_FALSE((*e)->validate(p));
}

TEST(SdxlSingleFile, SgmFileGivesTheFolderImage) {
  const std::string file = "pipelines/txt2img/euler_s4_cfg5_128x128.safetensors";
  GenerateParams p = params_for(case_of(file));
  LoadOptions lo;
  lo.config_dir = xl_model();
  auto single = Engine::load(xl_model() + ".safetensors", lo);
  ASSERT_TRUE(single) << single.error().to_string();
  EXPECT_EQ((*single)->info().family, "sdxl");
  auto a = (*single)->generate(p);
  ASSERT_TRUE(a) << a.error().to_string();
  XlRun b = run_case(xl_model(), p);
  EXPECT_EQ(a->images[0].pixels, b.result.images[0].pixels);
}

}  // namespace
}  // namespace vg

namespace vg {
namespace {

// TAESD as the final decoder (diffusers' vae=AutoencoderTiny): the latents are
// those of the KL-VAE pipeline at TAESD's scale (8), decoded by TAESD.
void expect_taesd_case(const std::string& model, const std::string& file, const std::string& taesd) {
  GenerateParams p = params_for(case_of(file));
  if (p.sampler == "euler" && case_of(file)["scheduler_class"] == "PNDMScheduler") p.sampler = "PNDMScheduler";
  if (case_of(file)["scheduler_class"] == "PNDMScheduler") p.sampler = "PNDMScheduler";
  p.vae = xl_model(taesd);
  auto e = Engine::load(model);
  ASSERT_TRUE(e) << e.error().to_string();
  auto r = (*e)->generate(p);
  ASSERT_TRUE(r) << r.error().to_string();
  Tensor png = test::image01(decode_png(read_file(xl() + "/" + file.substr(0, file.size() - 12) + ".png"), "ref"));
  EXPECT_GE(test::frac_within(test::image01(r->images[0]), png, 1.0 / 255 + 1e-6), 0.99) << file;
  EXPECT_NE(r->infotext[0].find("VAE: " + taesd), std::string::npos);
}

TEST(Taesd, AsTheFinalDecoderMatchesDiffusersOnSd1) {
  expect_taesd_case(test::tiny_model(), "pipelines/taesd/sd1_tiny_taesd_pndm_s4_cfg7p5_64x64.safetensors", "taesd-tiny");
}
TEST(Taesd, AsTheFinalDecoderMatchesDiffusersOnSdxl) {
  expect_taesd_case(xl_model(), "pipelines/taesd/sdxl_tiny_taesdxl_euler_s4_cfg5_128x96.safetensors", "taesdxl-tiny");
}

TEST(Taesd, PreviewsComeFromTaesdEveryNSteps) {
  auto e = Engine::load(xl_model());
  ASSERT_TRUE(e);
  GenerateParams p;
  p.prompt = "a red cube";
  p.steps = 4;
  p.seed = 1;
  p.width = p.height = 128;
  p.preview = "taesd";
  p.preview_every = 2;
  p.preview_vae = xl_model("taesdxl-tiny");
  std::vector<Image> previews;
  auto r = (*e)->generate(p, [&](const Progress& pr) {
    if (pr.preview) previews.push_back(*pr.preview);
    return true;
  });
  ASSERT_TRUE(r) << r.error().to_string();
  ASSERT_EQ(previews.size(), 2u);  // steps 2 and 4
  EXPECT_EQ(previews[1].width, 128);
  // The last preview is TAESD's decode of the final latents: close to the final image's colours.
  double diff = 0;
  for (size_t i = 0; i < previews[1].pixels.size(); ++i) diff += std::abs(previews[1].pixels[i] - r->images[0].pixels[i]);
  const double latent2rgb_like = diff / previews[1].pixels.size();
  EXPECT_LT(latent2rgb_like, 80.0);
  p.preview = "taesd";
  p.preview_vae.clear();
  Status s = (*e)->validate(p);
  auto r2 = (*e)->generate(p);
  ASSERT_FALSE(r2);
  EXPECT_NE(r2.error().message.find("--preview-vae"), std::string::npos);
}

}  // namespace
}  // namespace vg

namespace vg {
namespace {

// A user's SDXL single file: no tokenizer folder, no config, no network (an
// empty Hugging Face cache). The built-in CLIP vocabulary and shape-inferred
// configs run it; --lora and the A1111 prompt syntax on top.
TEST(SdxlSingleFile, RunsFromTheCliWithNoTokenizerFolderOrNetwork) {
  const std::string out = testing::TempDir() + "/sdxl_single.png";
  std::filesystem::remove(out);
  // The child inherits this environment: no tokenizer folder, an empty offline Hub cache.
  const char* tok = std::getenv("VG_TOKENIZER_DIR");
  const std::string saved_tok = tok ? tok : "";
  unsetenv("VG_TOKENIZER_DIR");
  setenv("HF_HUB_CACHE", (testing::TempDir() + "/empty_hub").c_str(), 1);
  setenv("HF_HUB_OFFLINE", "1", 1);
  // The fixture's SGM file lacks what its tiny shapes cannot reveal (8 norm
  // groups); `visiongen convert` writes it into the file's metadata.
  const std::string file = testing::TempDir() + "/sdxl_converted.safetensors";
  auto c = test::run_cli("convert " + xl_model() + " " + file);
  ASSERT_EQ(c.code, 0) << c.out;
  auto r = test::run_cli("generate -m " + file + " -p '(a red:1.2) cube BREAK on grass' --prompt-syntax a1111 "
                         "--steps 2 -W 64 -H 64 --seed 3 -q -o " + out + " --lora " + xl() + "/models/lora/sdxl_peft.safetensors:0.5");
  unsetenv("HF_HUB_CACHE");
  unsetenv("HF_HUB_OFFLINE");
  if (tok) setenv("VG_TOKENIZER_DIR", saved_tok.c_str(), 1);
  ASSERT_EQ(r.code, 0) << r.out;
  Image img = decode_png(read_file(out), "out");
  EXPECT_EQ(img.width, 64);
}

TEST(SdxlPipeline, A1111SyntaxWeightsAndChunksPrompts) {
  auto e = Engine::load(xl_model());
  ASSERT_TRUE(e);
  GenerateParams p;
  p.steps = 2;
  p.seed = 5;
  p.width = p.height = 64;
  p.prompt = "a red cube";
  auto plain = (*e)->generate(p);
  p.prompt_syntax = "a1111";
  auto same = (*e)->generate(p);  // no emphasis, one chunk: the same conditioning
  p.prompt = "a (red:1.5) cube";
  auto weighted = (*e)->generate(p);
  std::string long_prompt;
  for (int i = 0; i < 40; ++i) long_prompt += "red cube, ";
  p.prompt = long_prompt;  // > 75 tokens: two chunks
  auto chunked = (*e)->generate(p);
  ASSERT_TRUE(plain && same && weighted && chunked) << (chunked ? "" : chunked.error().to_string());
  EXPECT_EQ(plain->images[0].pixels, same->images[0].pixels);
  EXPECT_NE(plain->images[0].pixels, weighted->images[0].pixels);
  p.prompt_syntax = "diffusers";  // truncated at 77 tokens instead
  auto truncated = (*e)->generate(p);
  ASSERT_TRUE(truncated);
  EXPECT_NE(truncated->images[0].pixels, chunked->images[0].pixels);
}

}  // namespace
}  // namespace vg
