// SDXL LoRA parity with ../shared/fixtures/sdxl-tiny (README "LoRA"): kohya
// files with SGM UNet names and lora_te1_/lora_te2_, diffusers/PEFT files,
// a weighted stack, unmerging, and an SD1 LoRA refused on SDXL.
#include <cstring>
#include <regex>

#include "backend/cpu/ops.h"
#include "io/image_decode.h"
#include "io/image_io.h"
#include "io/weights.h"
#include "lora/lora_manager.h"
#include "pipelines/family_engine.h"
#include "pipelines/sd_model.h"
#include "test_util.h"
#include "visiongen/visiongen.h"

namespace vg {
namespace {

std::string xl() { return test::fixtures() + "/sdxl-tiny"; }
std::string xl_model() { return xl() + "/models/sdxl-tiny"; }

const nlohmann::json& lora_manifest() { return test::fixture_manifest("sdxl-tiny")["lora"]; }

const std::shared_ptr<SafetensorsFile>& stages() {
  static auto st = SafetensorsFile::open(xl() + "/" + lora_manifest()["stage_file"]["file"].get<std::string>());
  return st;
}

struct Loaded {
  std::unique_ptr<SdModel> m;
  std::unique_ptr<LoraManager> lm;
};
Loaded load() {
  Loaded l;
  l.m = load_sd_model(xl_model());
  l.lm = std::make_unique<LoraManager>(l.m->info.family,
                                       std::vector<LoraComponent>{{"unet", l.m->unet_layers, l.m->unet_sgm_name},
                                                                  {"text_encoder", l.m->text_encoder_layers, nullptr},
                                                                  {"text_encoder_2", l.m->text_encoder_2_layers, nullptr}});
  l.lm->set_dirs({xl() + "/models/lora"});
  return l;
}

// diffusers' encode_prompt (clip_skip None): both encoders' penultimate
// hidden states side by side, and text_encoder_2's pooled projection.
Tensor embeds(SdModel& m, Tensor* pooled) {
  const std::string prompt = lora_manifest()["stage_file"]["prompt"];
  const int64_t n1 = m.text_encoder->config().num_layers, n2 = m.text_encoder_2->config().num_layers;
  Tensor h1 = m.text_encoder->hidden_and_pooled({m.tokenizer->encode_padded(prompt)}, n1 - 1, nullptr);
  Tensor h2 = m.text_encoder_2->hidden_and_pooled({m.tokenizer_2->encode_padded(prompt)}, n2 - 1, pooled);
  return concat_channels(h1, h2);
}

// unet(sample_sdxl, t, embeds, text_embeds = pooled, time ids) in NCHW
Tensor unet_out(SdModel& m, const Tensor& e, const Tensor& pooled) {
  const auto& sf = lora_manifest()["stage_file"];
  std::vector<float> ids;
  for (const auto& v : sf["time_ids_sdxl"]) ids.push_back(v.get<float>());
  AddedCond added{pooled, Tensor::from({1, static_cast<int64_t>(ids.size())}, ids.data()).clone()};
  Tensor x = nchw_to_nhwc(stages()->load_f32("unet_in.sample_sdxl"));
  return nhwc_to_nchw(m.unet->forward(x, {sf["timestep"].get<float>()}, e, added));
}

double stage_diff(const Tensor& t, const std::string& name) {
  Tensor ref = stages()->load_f32(name);
  EXPECT_EQ(t.numel(), ref.numel()) << name;
  return test::max_abs_diff(t.data(), ref.data(), std::min(t.numel(), ref.numel()));
}
bool bitwise_equal(const Tensor& a, const Tensor& b) {
  return a.numel() == b.numel() && std::memcmp(a.data(), b.data(), a.numel() * sizeof(float)) == 0;
}

struct StageCase {
  const char* tag;
  std::vector<LoraSpec> specs;
};

// Text states within 1e-4 abs. The UNet output within 1e-4 *relative* (to
// its max |value|, ~3.7): without any LoRA this UNet is already 1.6e-4 abs
// (4.2e-5 rel) from diffusers here, the convention of SdxlUNet.*.
void expect_stages(const std::vector<StageCase>& cases, bool runtime = false) {
  Loaded l = load();
  l.lm->set_runtime(runtime);
  for (const StageCase& c : cases) {
    LoraApplied a = l.lm->set(c.specs);
    EXPECT_TRUE(a.warnings.empty()) << c.tag << ": " << (a.warnings.empty() ? "" : a.warnings[0]);
    Tensor pooled;
    Tensor e = embeds(*l.m, &pooled);
    const std::string p = std::string("sdxl.") + c.tag + ".";
    const double de = stage_diff(e, p + "prompt_embeds"), dp = stage_diff(pooled, p + "pooled_prompt_embeds");
    const Tensor u = unet_out(*l.m, e, pooled);
    const double du = stage_diff(u, p + "unet_out_t500"), ru = test::rel_err(u, stages()->load_f32(p + "unet_out_t500"));
    std::printf("[lora-sdxl] %s: prompt_embeds %.2e, pooled %.2e, unet_out %.2e (max abs; rel %.2e)\n", c.tag, de, dp, du, ru);
    EXPECT_LE(de, 1e-4) << c.tag;
    EXPECT_LE(dp, 1e-4) << c.tag;
    EXPECT_LE(ru, 1e-4) << c.tag;
  }
}

TEST(LoraSdxl, StagesMatchDiffusers) {
  expect_stages({{"base", {}}, {"kohya", {{"sdxl_kohya_locon", 1.0f}}}});
}
// The PEFT file (scale 2, random B) makes this tiny UNet ill-conditioned:
// merging the update and applying it at run time, the same math in float32
// with other rounding, already differ by ~1.6e-3 relative in the UNet output.
// No float32 engine can match diffusers closer than that floor, so these cases
// measure it in the same run and require our error to stay within a few times
// it (a wrong scale, factor order or target moves the output by 1e-1 and more).
// The text states are well conditioned and keep the plain 1e-4.
void expect_stages_near_floor(const StageCase& c) {
  Loaded m = load(), r = load();
  r.lm->set_runtime(true);
  m.lm->set(c.specs);
  r.lm->set(c.specs);
  Tensor pm, pr;
  const Tensor em = embeds(*m.m, &pm), er = embeds(*r.m, &pr);
  const std::string p = std::string("sdxl.") + c.tag + ".";
  for (const Tensor* e : {&em, &er}) EXPECT_LE(stage_diff(*e, p + "prompt_embeds"), 1e-4) << c.tag;
  for (const Tensor* q : {&pm, &pr}) EXPECT_LE(stage_diff(*q, p + "pooled_prompt_embeds"), 1e-4) << c.tag;
  const Tensor um = unet_out(*m.m, em, pm), ur = unet_out(*r.m, er, pr), ref = stages()->load_f32(p + "unet_out_t500");
  const double floor = test::rel_err(ur, um), err_m = test::rel_err(um, ref), err_r = test::rel_err(ur, ref);
  std::printf("[lora-sdxl] %s: unet_out rel merged %.2e, runtime %.2e; floor (runtime vs merged) %.2e\n", c.tag, err_m,
              err_r, floor);
  EXPECT_LE(err_m, std::max(1e-4, 4 * floor)) << c.tag;
  EXPECT_LE(err_r, std::max(1e-4, 4 * floor)) << c.tag;
  EXPECT_LE(floor, 1e-2) << c.tag;  // the floor itself stays small: both paths compute the same thing
}

TEST(LoraSdxl, PeftStagesMatchDiffusersToTheNoiseFloor) {
  expect_stages_near_floor({"peft", {{"sdxl_peft", 1.0f}}});
  expect_stages_near_floor({"stack_0p8_m0p4", {{"sdxl_kohya_locon", 0.8f}, {"sdxl_peft", -0.4f}}});
}

TEST(LoraSdxl, EveryModuleOfBothFilesFindsItsLayer) {
  // a kohya SDXL file names the UNet in SGM terms (input_blocks.4.1...,
  // middle_block.0.in_layers.2, output_blocks.2.0.out_layers.3) and the
  // encoders as lora_te1_/lora_te2_; none may fall through as unmatched
  Loaded l = load();
  for (const char* f : {"sdxl_kohya_locon", "sdxl_peft"}) {
    LoraApplied a = l.lm->set({{f, 1.0f}});
    EXPECT_TRUE(a.warnings.empty()) << f << ": " << (a.warnings.empty() ? "" : a.warnings[0]);
    size_t patched[3] = {0, 0, 0};
    int i = 0;
    for (auto* reg : {l.m->unet_layers.get(), l.m->text_encoder_layers.get(), l.m->text_encoder_2_layers.get()}) {
      for (const auto& [name, slot] : reg->slots()) patched[i] += slot->patched();
      ++i;
    }
    auto file = load_lora_file(xl() + "/models/lora/" + f + ".safetensors");
    EXPECT_EQ(patched[0] + patched[1] + patched[2], file->modules.size()) << f;
    for (size_t k = 0; k < 3; ++k) EXPECT_GT(patched[k], 0u) << f << " component " << k;
  }
}

TEST(LoraSdxl, UnmergeRestoresTheLoadedWeightsBitExactly) {
  Loaded fresh = load(), l = load();
  Tensor p0, p1;
  const Tensor e0 = embeds(*fresh.m, &p0), u0 = unet_out(*fresh.m, e0, p0);
  l.lm->set({{"sdxl_kohya_locon", 0.8f}, {"sdxl_peft", -0.4f}});
  Tensor pl;
  const Tensor el = embeds(*l.m, &pl);
  EXPECT_FALSE(bitwise_equal(el, e0));
  EXPECT_FALSE(bitwise_equal(pl, p0));
  EXPECT_FALSE(bitwise_equal(unet_out(*l.m, el, pl), u0));
  l.lm->set({});
  const Tensor e1 = embeds(*l.m, &p1);
  EXPECT_TRUE(bitwise_equal(e1, e0));
  EXPECT_TRUE(bitwise_equal(p1, p0));
  EXPECT_TRUE(bitwise_equal(unet_out(*l.m, e1, p1), u0));
  for (auto* reg : {l.m->unet_layers.get(), l.m->text_encoder_layers.get(), l.m->text_encoder_2_layers.get()})
    for (const auto& [name, slot] : reg->slots()) {
      Tensor w, orig;
      slot->materialize(&w, nullptr);
      slot->original(&orig, nullptr);
      ASSERT_TRUE(bitwise_equal(w, orig)) << name;
    }
}

// ---- whole pipelines through the SDXL engine ----

const nlohmann::json& case_named(const std::string& name) {
  for (const auto& c : lora_manifest()["cases"])
    if (c["name"] == name) return c;
  throw std::runtime_error("no manifest LoRA case " + name);
}

// The case's kwargs in visiongen's names; LoRAs and weights from "loras" and "set_adapters".
GenerateParams params_for(const nlohmann::json& c) {
  const auto& k = c["call_kwargs"];
  GenerateParams p;
  p.prompt = k["prompt"];
  if (k.contains("negative_prompt") && !k["negative_prompt"].is_null()) {  // absent: all zeros (force_zeros_for_empty_prompt)
    p.negative_prompt = k["negative_prompt"];
    p.set_fields.push_back("negative_prompt");
  }
  p.steps = k["num_inference_steps"];
  p.cfg_scale = k["guidance_scale"];
  p.seed = c["seed"];
  p.width = k["width"];
  p.height = k["height"];
  EXPECT_EQ(c["scheduler_class"], "EulerDiscreteScheduler");
  p.sampler = "euler";
  p.paste_back = "off";
  std::vector<float> weights;
  if (c["set_adapters"].is_object())
    for (const auto& w : c["set_adapters"]["adapter_weights"]) weights.push_back(w.get<float>());
  for (size_t i = 0; i < c["loras"].size(); ++i) {
    const std::string f = c["loras"][i]["file"];
    p.loras += (i ? "," : "") + xl() + "/" + f + ":" + std::to_string(i < weights.size() ? weights[i] : 1.0f);
  }
  return p;
}

struct PipelineRun {
  double lat = 0, px = 0;  // vs diffusers: latents rel, image fraction within 1/255
  Tensor latents, image;
};

PipelineRun run_pipeline(const std::string& name, const std::string& lora_mode) {
  const auto& c = case_named(name);
  GenerateParams p = params_for(c);
  LoadOptions lo;
  lo.lora_mode = lora_mode;
  auto e = make_sdxl_engine(load_sd_model(xl_model()), lo);
  EngineTrace trace;
  e->set_trace(&trace);
  Status v = validate_params(p);
  EXPECT_TRUE(v) << v.error().to_string();
  GenerateResult r = e->generate(p, ImageInputs{}, nullptr);
  EXPECT_TRUE(r.warnings.empty()) << name << ": " << (r.warnings.empty() ? "" : r.warnings[0]);
  auto ref = SafetensorsFile::open(xl() + "/" + c["file"].get<std::string>());
  EXPECT_LE(test::rel_err(trace.context, ref->load_f32("unet0.encoder_hidden_states")), 1e-4) << name;
  EXPECT_LE(test::rel_err(trace.text_embeds, ref->load_f32("unet0.text_embeds")), 1e-4) << name;
  const double lat = test::rel_err(nhwc_to_nchw(trace.final_latents), ref->load_f32("latents_final"));
  if (r.images.size() != 1) throw std::runtime_error(name + ": no image");
  Tensor png = test::image01(decode_png(read_file(xl() + "/" + c["png"].get<std::string>()), "ref"));
  const double px = test::frac_within(test::image01(r.images[0]), png, 1.0 / 255 + 1e-6);
  std::printf("[lora-sdxl] %s (%s): latents rel %.2e, image within 1/255 %.4f\n", name.c_str(), lora_mode.c_str(), lat, px);
  return {lat, px, nhwc_to_nchw(trace.final_latents), test::image01(r.images[0])};
}

void expect_pipeline(const std::string& name) {
  const PipelineRun r = run_pipeline(name, "merge");
  EXPECT_LE(r.lat, 1e-3) << name;
  EXPECT_GE(r.px, 0.99) << name;
}

// PEFT cases: see PeftStagesMatchDiffusersToTheNoiseFloor. Four Euler steps
// carry the step-0 floor into the final latents; both lora modes must stay
// within a few times their own disagreement, and the images close.
void expect_pipeline_near_floor(const std::string& name) {
  const PipelineRun m = run_pipeline(name, "merge"), r = run_pipeline(name, "runtime");
  const double floor = test::rel_err(r.latents, m.latents);
  const double px_floor = test::frac_within(r.image, m.image, 1.0 / 255 + 1e-6);
  std::printf("[lora-sdxl] %s: floor (runtime vs merged) latents %.2e, image within 1/255 %.4f\n", name.c_str(), floor, px_floor);
  for (const PipelineRun* x : {&m, &r}) {
    EXPECT_LE(x->lat, std::max(1e-3, 4 * floor)) << name;
    EXPECT_GE(x->px, std::min(0.99, px_floor - 0.05)) << name;
  }
}

TEST(LoraSdxl, KohyaLoconPipeline) { expect_pipeline("lora/sdxl_kohya_locon"); }
TEST(LoraSdxl, PeftPipelineToTheNoiseFloor) { expect_pipeline_near_floor("lora/sdxl_peft"); }
TEST(LoraSdxl, StackPipelineToTheNoiseFloor) { expect_pipeline_near_floor("lora/sdxl_stack_kohya0p8_peftm0p4"); }

TEST(LoraSdxl, EngineUnmergesAndRefusesAnSd1Lora) {
  GenerateParams p = params_for(case_named("lora/sdxl_peft"));
  p.steps = 2;
  const std::string loras = p.loras;
  p.loras = "";
  auto e = make_sdxl_engine(load_sd_model(xl_model()), LoadOptions{});
  GenerateResult base = e->generate(p, ImageInputs{}, nullptr);
  p.loras = loras;
  GenerateResult with = e->generate(p, ImageInputs{}, nullptr);
  EXPECT_NE(with.images[0].pixels, base.images[0].pixels);
  p.loras = "";
  GenerateResult again = e->generate(p, ImageInputs{}, nullptr);
  EXPECT_EQ(again.images[0].pixels, base.images[0].pixels);

  // a <lora:...> tag in prompt_2 applies the LoRA and leaves the encoded text
  const std::string kohya = xl() + "/models/lora/sdxl_kohya_locon.safetensors";
  p.prompt_2 = "a cat";
  p.loras = kohya + ":0.7";
  GenerateResult flag = e->generate(p, ImageInputs{}, nullptr);
  p.loras = "";
  p.prompt_2 = "a cat <lora:" + kohya + ":0.7>";
  GenerateResult tag = e->generate(p, ImageInputs{}, nullptr);
  EXPECT_EQ(tag.images[0].pixels, flag.images[0].pixels);
  p.prompt_2 = "";

  // SD1's kohya file has one text encoder (lora_te_) and SD1-sized layers
  p.loras = test::fixtures() + "/sdxl-tiny/models/lora/sd1_kohya_locon.safetensors";
  try {
    e->generate(p, ImageInputs{}, nullptr);
    ADD_FAILURE() << "an SD1 LoRA was accepted by an SDXL model";
  } catch (const VgException& ex) {
    EXPECT_EQ(ex.to_error().code, ErrorCode::kLoraIncompatible) << ex.what();
    EXPECT_NE(std::string(ex.what()).find("lora_te_"), std::string::npos) << ex.what();
  }
  p.loras = "";  // nothing of it was merged
  GenerateResult after = e->generate(p, ImageInputs{}, nullptr);
  EXPECT_EQ(after.images[0].pixels, base.images[0].pixels);
}

}  // namespace
}  // namespace vg
