// FLUX.1 transformer vs diffusers' FluxTransformer2DModel (flux-tiny fixture).
#include <functional>

#include "io/tensor_file.h"
#include "io/weights.h"
#include "models/flux.h"
#include "models/flux_names.h"
#include "test_util.h"

namespace vg {
namespace {

std::string flux() { return test::fixtures() + "/flux-tiny"; }
std::string model_dir(const std::string& v) { return flux() + "/models/flux-tiny-" + v; }
std::string bfl_file(const std::string& v) { return flux() + "/models/flux1-tiny-" + v + ".safetensors"; }

std::vector<float> to_vec(const Tensor& t) { return std::vector<float>(t.data(), t.data() + t.numel()); }

WeightStore bfl_store(const std::string& v) { return flux_bfl_weights(open_tensor_file(bfl_file(v))); }
WeightStore diffusers_store(const std::string& v) {
  return flux_weights_from_diffusers(open_component_weights(model_dir(v) + "/transformer", "transformer"));
}
FluxConfig config_json(const std::string& v) {
  return FluxConfig::from_json_file(model_dir(v) + "/transformer/config.json");
}

// One case of transformer_<v>.safetensors, every timestep, every stage.
struct CaseRun {
  double worst = 0;
  int calls = 0;
};

void check_variant(const std::string& v, const FluxTransformer& model, CaseRun& run) {
  auto ref = open_tensor_file(flux() + "/transformer/transformer_" + v + ".safetensors");
  for (const char* g : {"b1_lat8x12", "b2_lat12x8"}) {
    const std::string p = std::string(g) + ".";
    const Tensor img = ref->load_f32(p + "hidden_states"), txt = ref->load_f32(p + "encoder_hidden_states");
    const Tensor pooled = ref->load_f32(p + "pooled_projections");
    const Tensor img_ids = ref->load_f32(p + "img_ids"), txt_ids = ref->load_f32(p + "txt_ids");
    for (const char* t : {"t1p0", "t0p4375"}) {
      const std::string c = p + t + ".";
      const auto ts = to_vec(ref->load_f32(c + "timestep"));
      const auto gd = ref->has(c + "guidance") ? to_vec(ref->load_f32(c + "guidance")) : std::vector<float>{};
      EXPECT_EQ(gd.empty(), v == "schnell");
      FluxTrace tr;
      const Tensor out = model.forward(img, txt, pooled, ts, gd, img_ids, txt_ids, &tr);
      auto cmp = [&](const Tensor& got, const std::string& name) {
        const Tensor want = ref->load_f32(c + name);
        ASSERT_EQ(got.shape(), want.shape()) << c << name;
        const double e = test::rel_err(got, want);
        EXPECT_LE(e, 1e-4) << v << " " << c << name;
        run.worst = std::max(run.worst, e);
      };
      cmp(tr.temb, "temb");
      cmp(tr.x_embedder, "x_embedder");
      cmp(tr.context_embedder, "context_embedder");
      cmp(tr.rope_cos, "rope_cos");
      cmp(tr.rope_sin, "rope_sin");
      ASSERT_EQ(tr.double_img.size(), 2u);
      ASSERT_EQ(tr.single_img.size(), 2u);
      for (int i = 0; i < 2; ++i) {
        const std::string d = "double_block" + std::to_string(i) + ".",
                          s = "single_block" + std::to_string(i) + ".";
        cmp(tr.double_img[i], d + "hidden_states");
        cmp(tr.double_txt[i], d + "encoder_hidden_states");
        cmp(tr.single_img[i], s + "hidden_states");
        cmp(tr.single_txt[i], s + "encoder_hidden_states");
      }
      cmp(tr.norm_out, "norm_out");
      cmp(out, "out");
      ++run.calls;
    }
  }
}

TEST(FluxTransformer, EveryStageMatchesDiffusers) {
  for (const char* v : {"dev", "schnell"}) {
    const WeightStore w = bfl_store(v);
    const FluxTransformer model(FluxConfig::from_weights(w), w);
    CaseRun run;
    check_variant(v, model, run);
    EXPECT_EQ(run.calls, 4) << v;
    std::printf("[flux %s] worst stage rel err %.3g\n", v, run.worst);
  }
}

TEST(FluxTransformer, ConfigFromBflWeightsEqualsConfigJson) {
  for (const char* v : {"dev", "schnell"}) {
    const FluxConfig want = config_json(v);
    EXPECT_EQ(want.guidance_embeds, std::string(v) == "dev");
    EXPECT_EQ(FluxConfig::from_weights(bfl_store(v)), want) << v;
    EXPECT_EQ(FluxConfig::from_weights(diffusers_store(v)), want) << v;  // through the renaming resolver
  }
  const WeightStore w = bfl_store("dev");
  EXPECT_EQ(FluxConfig::from_weights(w, {2, 6, 8}).axes_dims_rope, (std::vector<int64_t>{2, 6, 8}));
  EXPECT_EQ(test::code_of([&] { FluxConfig::from_weights(w, {16, 56, 56}); }), ErrorCode::kCorruptFile);
}

TEST(FluxTransformer, DiffusersFolderEqualsBflFile) {
  for (const char* v : {"dev", "schnell"}) {
    EXPECT_TRUE(is_flux_bfl(*open_tensor_file(bfl_file(v))));
    EXPECT_FALSE(is_flux_diffusers(*open_tensor_file(bfl_file(v))));
    const std::string dfile = model_dir(v) + "/transformer/diffusion_pytorch_model.safetensors";
    EXPECT_TRUE(is_flux_diffusers(*open_tensor_file(dfile)));
    EXPECT_FALSE(is_flux_bfl(*open_tensor_file(dfile)));
    const WeightStore b = bfl_store(v), d = diffusers_store(v);
    int n = 0;
    for (auto& [name, info] : b.entries()) {  // every BFL tensor, fused/swapped ones included, bit for bit
      const Tensor x = b.get(name), y = d.get(name);
      ASSERT_EQ(x.shape(), y.shape()) << name;
      EXPECT_EQ(test::max_abs_diff(x.data(), y.data(), x.numel()), 0.0) << name;
      ++n;
    }
    EXPECT_GT(n, 40);
    const FluxConfig cfg = config_json(v);
    const FluxTransformer mb(cfg, b), md(cfg, d);
    auto ref = open_tensor_file(flux() + "/transformer/transformer_" + v + ".safetensors");
    const std::string p = "b2_lat12x8.";
    const std::vector<float> ts{0.4375f, 0.25f},
        gd = cfg.guidance_embeds ? std::vector<float>{3.5f} : std::vector<float>{};
    auto run = [&](const FluxTransformer& m) {
      return m.forward(ref->load_f32(p + "hidden_states"), ref->load_f32(p + "encoder_hidden_states"),
                       ref->load_f32(p + "pooled_projections"), ts, gd, ref->load_f32(p + "img_ids"),
                       ref->load_f32(p + "txt_ids"));
    };
    const Tensor ob = run(mb), od = run(md);
    EXPECT_EQ(test::max_abs_diff(ob.data(), od.data(), ob.numel()), 0.0) << v;
  }
}

// Inputs of the b1 case for the error/guidance checks.
struct B1 {
  std::shared_ptr<TensorFile> ref;
  Tensor img, txt, pooled, img_ids, txt_ids;
  explicit B1(const std::string& v)
      : ref(open_tensor_file(flux() + "/transformer/transformer_" + v + ".safetensors")) {
    img = ref->load_f32("b1_lat8x12.hidden_states");
    txt = ref->load_f32("b1_lat8x12.encoder_hidden_states");
    pooled = ref->load_f32("b1_lat8x12.pooled_projections");
    img_ids = ref->load_f32("b1_lat8x12.img_ids");
    txt_ids = ref->load_f32("b1_lat8x12.txt_ids");
  }
};

TEST(FluxTransformer, GuidanceRulesAndBadInputs) {
  const WeightStore wd = bfl_store("dev"), ws = bfl_store("schnell");
  const FluxTransformer dev(config_json("dev"), wd), schnell(config_json("schnell"), ws);
  const B1 d("dev"), s("schnell");
  EXPECT_EQ(test::code_of([&] { dev.forward(d.img, d.txt, d.pooled, {1.0f}, {}, d.img_ids, d.txt_ids); }),
            ErrorCode::kInvalidArgument);
  // schnell has no guidance embedder: a given guidance changes nothing
  const Tensor a = schnell.forward(s.img, s.txt, s.pooled, {1.0f}, {}, s.img_ids, s.txt_ids);
  const Tensor b = schnell.forward(s.img, s.txt, s.pooled, {1.0f}, {3.5f}, s.img_ids, s.txt_ids);
  EXPECT_EQ(test::max_abs_diff(a.data(), b.data(), a.numel()), 0.0);
  // guidance does matter for dev
  const Tensor g1 = dev.forward(d.img, d.txt, d.pooled, {1.0f}, {1.0f}, d.img_ids, d.txt_ids);
  const Tensor g3 = dev.forward(d.img, d.txt, d.pooled, {1.0f}, {3.5f}, d.img_ids, d.txt_ids);
  EXPECT_GT(test::max_abs_diff(g1.data(), g3.data(), g1.numel()), 1e-3);
  const Tensor wide_txt({1, 20, 32});
  EXPECT_EQ(test::code_of([&] { dev.forward(d.img, wide_txt, d.pooled, {1.0f}, {3.5f}, d.img_ids, d.txt_ids); }),
            ErrorCode::kShapeMismatch);
  EXPECT_EQ(test::code_of([&] { dev.forward(d.img, d.txt, d.pooled, {1.0f}, {3.5f}, d.txt_ids, d.img_ids); }),
            ErrorCode::kShapeMismatch);
  EXPECT_EQ(test::code_of([&] {
              dev.forward(d.img, d.txt, d.pooled, {1.0f, 2.0f, 3.0f}, {3.5f}, d.img_ids, d.txt_ids);
            }),
            ErrorCode::kInvalidArgument);
  // weights that do not fit the config: a missing block, a wrong width
  FluxConfig more = config_json("dev");
  more.num_single_layers = 3;
  EXPECT_EQ(test::code_of([&] { FluxTransformer m(more, wd); }), ErrorCode::kShapeMismatch);
  FluxConfig wider = config_json("dev");
  wider.num_attention_heads = 4;
  EXPECT_EQ(test::code_of([&] { FluxTransformer m(wider, wd); }), ErrorCode::kShapeMismatch);
  // a SD file is not a FLUX transformer
  EXPECT_EQ(
      test::code_of([&] {
        flux_bfl_weights(open_tensor_file(model_dir("dev") + "/vae/diffusion_pytorch_model.safetensors"));
      }),
      ErrorCode::kCorruptFile);
}

TEST(FluxTransformer, Bf16ComputeStaysClose) {
  WeightStore w = bfl_store("dev");
  w.set_compute_bf16(true);
  const FluxTransformer model(config_json("dev"), w);
  const B1 d("dev");
  const Tensor out = model.forward(d.img, d.txt, d.pooled, {1.0f}, {3.5f}, d.img_ids, d.txt_ids);
  const double e = test::rel_err(out, d.ref->load_f32("b1_lat8x12.t1p0.out"));
  std::printf("[flux bf16] rel err %.3g\n", e);
  EXPECT_LE(e, 1e-2);  // measured 3.1e-3
}

// city96's Q8_0 GGUF of flux-tiny-dev: the first transformer call of a pipeline
// whose reference ran the dequantised weights in float32.
TEST(FluxTransformer, GgufQ8_0MatchesReference) {
  const std::string dir = test::fixtures() + "/gguf/flux/";
  auto file = open_tensor_file(dir + "flux1-tiny-dev-Q8_0.gguf");
  ASSERT_TRUE(is_flux_bfl(*file));
  auto ref = open_tensor_file(dir + "flux_q8_0_dev_g3p5_s4_96x64_msl512.safetensors");
  const Tensor img = ref->load_f32("transformer_in_step0"), txt = ref->load_f32("prompt_embeds");
  const Tensor pooled = ref->load_f32("pooled_prompt_embeds"), want = ref->load_f32("transformer_out_step0");
  const auto ts = to_vec(ref->load_f32("transformer_timestep_step0"));
  const auto gd = to_vec(ref->load_f32("transformer_guidance_step0"));
  // 96x64 image -> 8x12 latent -> 4x6 packed tokens, ids (0, row, col); text ids zero
  Tensor img_ids = Tensor::zeros({24, 3});
  for (int64_t r = 0; r < 4; ++r)
    for (int64_t c = 0; c < 6; ++c) {
      img_ids.data()[(r * 6 + c) * 3 + 1] = static_cast<float>(r);
      img_ids.data()[(r * 6 + c) * 3 + 2] = static_cast<float>(c);
    }
  const Tensor txt_ids = Tensor::zeros({txt.dim(1), 3});
  double errs[2];
  for (bool dequant : {true, false}) {
    WeightStore w = flux_bfl_weights(file);
    w.set_dequantize_blocks(dequant);
    const FluxConfig cfg = FluxConfig::from_weights(w);
    EXPECT_EQ(cfg, config_json("dev"));
    const FluxTransformer model(cfg, w);
    errs[dequant] = test::rel_err(model.forward(img, txt, pooled, ts, gd, img_ids, txt_ids), want);
  }
  std::printf("[flux q8_0] rel err dequantised %.3g, native blocks %.3g\n", errs[1], errs[0]);
  EXPECT_LE(errs[1], 1e-4);  // exact dequantisation, float32 compute
  EXPECT_LE(errs[0], 1e-2);  // quantised activations (int8 path): measured 3.5e-3
}

}  // namespace
}  // namespace vg
