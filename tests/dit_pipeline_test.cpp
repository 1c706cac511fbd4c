// Whole FLUX and SD3 pipelines vs diffusers 0.40 (flux-tiny, sd3-tiny): every
// case of the fixtures' manifests through the engines (presets off, the same
// seeds): final latents <= 1e-3 relative, images within 1/255 on >= 99 % of
// values; single-file layouts give the same image as their diffusers folder.
#include <filesystem>

#include "backend/cpu/ops.h"
#include "io/image_decode.h"
#include "pipelines/flux_model.h"
#include "pipelines/sd3_model.h"
#include "test_util.h"

namespace vg {
namespace {

// The request a manifest case describes, in our parameters.
GenerateParams params_of(const nlohmann::json& c, bool flux) {
  const auto& k = c["call_kwargs"];
  GenerateParams p;
  p.prompt = k["prompt"].get<std::string>();
  p.negative_prompt = k.value("negative_prompt", std::string());
  p.width = k["width"];
  p.height = k["height"];
  p.steps = k["num_inference_steps"];
  p.seed = test::manual_seed_of(k["generator"]);
  p.max_sequence_length = k.value("max_sequence_length", 0);
  if (flux) {
    p.guidance = k["guidance_scale"];
    p.cfg_scale = k.value("true_cfg_scale", 1.0f);
  } else {
    p.cfg_scale = k["guidance_scale"];
    if (k.contains("clip_skip")) p.clip_skip = k["clip_skip"].get<int>() + 1;  // diffusers k = our k + 1
    if (k.contains("skip_guidance_layers")) {
      p.skip_layers.clear();
      for (const auto& l : k["skip_guidance_layers"]) p.skip_layers += (p.skip_layers.empty() ? "" : ",") + std::to_string(l.get<int>());
      p.skip_layer_scale = k["skip_layer_guidance_scale"];
      p.skip_layer_start = k["skip_layer_guidance_start"];
      p.skip_layer_stop = k["skip_layer_guidance_stop"];
    }
  }
  const std::string sched = c["scheduler_class"].get<std::string>();
  p.sampler = sched == "FlowMatchHeunDiscreteScheduler" ? "heun" : sched == "DPMSolverMultistepScheduler" ? "dpmpp_2m" : "euler";
  if (k.contains("strength")) p.strength = k["strength"];
  return p;
}

std::unique_ptr<FamilyEngine> engine_for(const std::string& fixture, const std::string& model, const LoadOptions& lo) {
  const std::string path = test::fixtures() + "/" + fixture + "/" + model;
  if (fixture == "flux-tiny") return make_flux_engine(load_flux_model(path, lo, false), lo);
  return make_sd3_engine(load_sd3_model(path, lo, false), lo);
}

void run_cases(const std::string& fixture) {
  const std::string root = test::fixtures() + "/" + fixture;
  const bool flux = fixture == "flux-tiny";
  for (const auto& c : test::fixture_manifest(fixture)["pipelines"]) {
    const std::string name = c["name"];
    SCOPED_TRACE(name);
    LoadOptions lo;
    lo.no_t5 = name.rfind("noT5", 0) == 0;
    auto eng = engine_for(fixture, c["model"], lo);
    GenerateParams p = params_of(c, flux);
    ImageInputs in;
    Image init, mask;
    if (c.contains("init_image") && !c["init_image"].is_null()) {
      init = read_image_file(root + "/" + c["init_image"].get<std::string>());
      in.init_image = &init;
    }
    if (c.contains("mask_image") && !c["mask_image"].is_null()) {
      mask = read_image_file(root + "/" + c["mask_image"].get<std::string>());
      in.mask = &mask;
    }
    EngineTrace trace;
    eng->set_trace(&trace);
    ASSERT_TRUE(eng->validate(p, in).ok()) << eng->validate(p, in).error().message;
    GenerateResult r = eng->generate(p, in, nullptr);
    auto ref = SafetensorsFile::open(root + "/cases/" + name + ".safetensors");
    const Tensor want = ref->load_f32("latents_final");
    const Tensor got = nhwc_to_nchw(trace.final_latents);
    const double lat = test::rel_err(got, want);
    EXPECT_LE(lat, 1e-3);
    const Tensor img = test::image01(r.images[0]);
    const double px = test::frac_within(img, ref->load_f32("image"), 1.0 / 255 + 1e-6);
    EXPECT_GE(px, 0.99);
    std::printf("  %-44s latents rel %.2e, pixels within 1/255 %.4f\n", name.c_str(), lat, px);
  }
}

TEST(FluxPipeline, EveryFixtureCaseMatchesDiffusers) { run_cases("flux-tiny"); }

// A small request for the single-file vs folder comparisons.
GenerateParams small_request(float cfg, int64_t seed) {
  GenerateParams p;
  p.prompt = "a red fox";
  p.width = p.height = 64;
  p.steps = 2;
  p.seed = seed;
  p.cfg_scale = cfg;
  return p;
}
TEST(Sd3Pipeline, EveryFixtureCaseMatchesDiffusers) { run_cases("sd3-tiny"); }

// BFL's single files (transformer + ae) with the folder's text encoders as
// separate files give the folder's image.
TEST(FluxPipeline, BflSingleFilesGiveTheFolderImage) {
  const std::string root = test::fixtures() + "/flux-tiny/models";
  const GenerateParams p = small_request(1, 3);
  LoadOptions folder;
  auto a = make_flux_engine(load_flux_model(root + "/flux-tiny-dev", folder, false), folder)->generate(p, {}, nullptr);
  LoadOptions single;
  single.clip_l = root + "/flux-tiny-dev/text_encoder";
  single.t5 = root + "/flux-tiny-dev/text_encoder_2";
  single.vae_file = root + "/ae-tiny.safetensors";
  single.config_dir = root + "/flux-tiny-dev";
  auto b = make_flux_engine(load_flux_model(root + "/flux1-tiny-dev.safetensors", single, false), single)->generate(p, {}, nullptr);
  ASSERT_EQ(a.images[0].pixels.size(), b.images[0].pixels.size());
  EXPECT_GE(test::frac_within(test::image01(a.images[0]), test::image01(b.images[0]), 1.0 / 255 + 1e-6), 0.999);
}

TEST(Sd3Pipeline, StabilitySingleFileGivesTheFolderImage) {
  const std::string root = test::fixtures() + "/sd3-tiny/models";
  const GenerateParams p = small_request(4, 3);
  LoadOptions folder;
  auto a = make_sd3_engine(load_sd3_model(root + "/sd3-tiny", folder, false), folder)->generate(p, {}, nullptr);
  LoadOptions single;  // the real file holds no text encoders: the folder's, as files diffusers would be given
  single.config_dir = root + "/sd3-tiny";
  auto b = make_sd3_engine(load_sd3_model(root + "/sd3.5-tiny-medium.safetensors", single, false), single)->generate(p, {}, nullptr);
  EXPECT_GE(test::frac_within(test::image01(a.images[0]), test::image01(b.images[0]), 1.0 / 255 + 1e-6), 0.999);
}

}  // namespace
}  // namespace vg

namespace vg {
namespace {

// city96's FLUX GGUF (--transformer) on the flux-tiny folder: dequantised
// exactly, the pipeline gives diffusers' image with the dequantised weights.
TEST(FluxPipeline, City96GgufTransformerMatchesDiffusers) {
  const std::string g = test::fixtures() + "/gguf/flux";
  struct Case {
    const char* name;
    const char* prompt;
    int w, h, steps, msl;
    int64_t seed;
  };
  for (const Case& c : {Case{"flux_q8_0_dev_g3p5_s4_96x64_msl512", "a painting of a squirrel eating a burger", 96, 64, 4, 512, 42},
                        Case{"flux_q8_0_dev_g3p5_s6_64x96_msl64", "a lighthouse at night, digital art", 64, 96, 6, 64, 5}}) {
    SCOPED_TRACE(c.name);
    LoadOptions lo;
    lo.transformer_file = g + "/flux1-tiny-dev-Q8_0.gguf";
    lo.quant_compute = "dequant";
    ScopedDequantizeBlocks exact(true);
    auto eng = make_flux_engine(load_flux_model(test::fixtures() + "/flux-tiny/models/flux-tiny-dev", lo, false), lo);
    GenerateParams p;
    p.prompt = c.prompt;
    p.width = c.w;
    p.height = c.h;
    p.steps = c.steps;
    p.seed = c.seed;
    p.guidance = 3.5f;
    p.cfg_scale = 1;
    p.max_sequence_length = c.msl;
    EngineTrace trace;
    eng->set_trace(&trace);
    GenerateResult r = eng->generate(p, {}, nullptr);
    auto ref = SafetensorsFile::open(g + "/" + c.name + ".safetensors");
    EXPECT_LE(test::rel_err(nhwc_to_nchw(trace.final_latents), ref->load_f32("latents_final")), 1e-3);
    EXPECT_GE(test::frac_within(test::image01(r.images[0]), ref->load_f32("image"), 1.0 / 255 + 1e-6), 0.99);
  }
}

}  // namespace
}  // namespace vg

namespace vg {
namespace {

// An SD3 single file with its text encoders inside (SD3-medium "incl_clips"
// style: text_encoders.{clip_l,clip_g,t5xxl}.transformer.*, CLIP-L without
// its projection) gives the folder's image with no component flags.
TEST(Sd3Pipeline, SingleFileWithEncodersInsideGivesTheFolderImage) {
  const std::string root = test::fixtures() + "/sd3-tiny/models";
  std::vector<TensorToWrite> out;
  std::vector<std::shared_ptr<SafetensorsFile>> keep;
  auto add = [&](const std::string& file, const std::string& prefix, bool skip_projection) {
    keep.push_back(SafetensorsFile::open(file));
    for (const auto& [name, info] : keep.back()->tensors()) {
      if (skip_projection && name == "text_projection.weight") continue;
      out.push_back(TensorToWrite{prefix + name, info.dtype, info.shape, info.data});
    }
  };
  add(root + "/sd3.5-tiny-medium.safetensors", "", false);
  add(root + "/sd3-tiny/text_encoder/model.safetensors", "text_encoders.clip_l.transformer.", true);
  add(root + "/sd3-tiny/text_encoder_2/model.safetensors", "text_encoders.clip_g.transformer.", false);
  add(root + "/sd3-tiny/text_encoder_3/model.safetensors", "text_encoders.t5xxl.transformer.", false);
  const std::string dir = ::testing::TempDir() + "/sd3_incl_clips";
  std::filesystem::create_directories(dir);
  write_safetensors(dir + "/sd3-tiny-incl-clips.safetensors", out, {});
  const GenerateParams p = small_request(4, 4);
  LoadOptions folder;
  auto a = make_sd3_engine(load_sd3_model(root + "/sd3-tiny", folder, false), folder)->generate(p, {}, nullptr);
  LoadOptions single;  // configs (widths the shapes cannot tell) from the folder; every weight from the file
  single.config_dir = root + "/sd3-tiny";
  auto m = load_sd3_model(dir + "/sd3-tiny-incl-clips.safetensors", single, false);
  ASSERT_TRUE(m->t5);
  auto b = make_sd3_engine(std::move(m), single)->generate(p, {}, nullptr);
  EXPECT_GE(test::frac_within(test::image01(a.images[0]), test::image01(b.images[0]), 1.0 / 255 + 1e-6), 0.999);
}

}  // namespace
}  // namespace vg
