// Wan 2.2 TI2V transformer vs diffusers' WanTransformer3DModel (wan22-tiny fixture).
#include <filesystem>
#include <nlohmann/json.hpp>

#include "io/safetensors.h"
#include "io/tensor_file.h"
#include "io/weights.h"
#include "models/config_util.h"
#include "models/wan.h"
#include "models/wan_names.h"
#include "test_util.h"

namespace vg {
namespace {

std::string wan() { return test::fixtures() + "/wan22-tiny"; }
std::string model_dir() { return wan() + "/models/wan22-tiny-ti2v"; }
std::string config_json() { return model_dir() + "/transformer/config.json"; }
std::string single_file() { return wan() + "/models/single_file/wan2.2_ti2v_tiny_fp16.safetensors"; }
std::shared_ptr<TensorFile> ref() {
  static auto f = open_tensor_file(wan() + "/transformer/transformer.safetensors");
  return f;
}

WeightStore folder_store(bool bf16 = false) {
  WeightStore w =
      wan_weights_from_diffusers(open_component_weights(model_dir() + "/transformer", "transformer"));
  w.set_compute_bf16(bf16);
  return w;
}

// Item b of [B, C, F, h, w] -> [F, h, w, C].
Tensor item_fhwc(const Tensor& x, int64_t b) {
  const int64_t c = x.dim(1), f = x.dim(2), h = x.dim(3), w = x.dim(4), plane = f * h * w;
  Tensor out({f, h, w, c});
  for (int64_t ch = 0; ch < c; ++ch)
    for (int64_t i = 0; i < plane; ++i) out.data()[i * c + ch] = x.data()[(b * c + ch) * plane + i];
  return out;
}

// Rows of item b of [B, ...] as [rest...].
Tensor item(const Tensor& x, int64_t b) {
  const int64_t n = x.numel() / x.dim(0);
  Shape s(x.shape().begin() + 1, x.shape().end());
  return Tensor::from(s, x.data() + b * n);
}

struct Case {
  std::string group, name;
};
const std::vector<Case>& cases() {
  static const std::vector<Case> c = {
      {"b1_f3_h4w6", "t999_expanded"},           {"b1_f3_h4w6", "t500_expanded"},
      {"b1_f3_h4w6", "t700_i2v_first_frame_t0"}, {"b1_f3_h4w6", "t500_scalar"},
      {"b2_f2_h8w4", "t999_expanded"},           {"b2_f2_h8w4", "t250_expanded"},
      {"b2_f2_h8w4", "t999_1_expanded"}};
  return c;
}

// Every case's output (and, with `intermediates`, every stored stage) vs the
// fixture; returns the worst relative error of the outputs and stages.
double check_all(const WanTransformer& model, double tol, bool intermediates) {
  auto r = ref();
  const WanContext cond = model.prepare_text(r->load_f32("text.prompt_embeds"));
  const WanContext uncond = model.prepare_text(r->load_f32("text.negative_prompt_embeds"));
  double worst = 0;
  int calls = 0;
  for (const Case& cs : cases()) {
    const std::string p = cs.group + "." + cs.name + ".";
    const Tensor hs = r->load_f32(p + "hidden_states"), ts = r->load_f32(p + "timestep"),
                 want = r->load_f32(p + "out");
    for (int64_t b = 0; b < hs.dim(0); ++b) {
      const std::string tag = p + std::to_string(b);
      const Tensor x = item_fhwc(hs, b);
      const int64_t n = x.dim(0) * (x.dim(1) / 2) * (x.dim(2) / 2);
      std::vector<float> t(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) t[i] = ts.rank() == 1 ? ts.data()[b] : ts.data()[b * n + i];
      const WanContext& ctx = b == 0 ? cond : uncond;
      WanTrace tr;
      const Tensor out = model.forward(x, t, ctx, &tr);
      const Tensor w = item_fhwc(want, b);
      if (out.shape() != w.shape()) {
        ADD_FAILURE() << tag << ": shape " << shape_str(out.shape());
        continue;
      }
      const double e = test::rel_err(out, w);
      EXPECT_LE(e, tol) << tag << " out";
      worst = std::max(worst, e);
      ++calls;
      if (!intermediates || !r->has(p + "temb")) continue;
      auto cmp = [&](const Tensor& got, const std::string& name) {
        const Tensor ref_item = item(r->load_f32(p + name), b);
        ASSERT_EQ(got.numel(), ref_item.numel()) << tag << " " << name;
        const double err = test::rel_err(got, ref_item);
        EXPECT_LE(err, tol) << tag << " " << name;
        worst = std::max(worst, err);
      };
      // one embedding per distinct value: 2 for image-to-video (frame 0 at t = 0), else 1
      EXPECT_EQ(tr.distinct_timesteps, cs.name == "t700_i2v_first_frame_t0" ? 2 : 1) << tag;
      cmp(tr.temb, "temb");
      cmp(tr.timestep_proj, "timestep_proj");
      cmp(ctx.text_embedded, "text_embedded");
      cmp(tr.patch_embedding_tokens, "patch_embedding_tokens");
      EXPECT_EQ(tr.block_out.size(), 2u);
      for (size_t i = 0; i < tr.block_out.size(); ++i)
        cmp(tr.block_out[i], "block" + std::to_string(i) + "_out");
    }
  }
  EXPECT_EQ(calls, 10);
  return worst;
}

TEST(WanTransformer, EveryCaseAndStageMatchesDiffusers) {
  const WanTransformer model(WanTransformerConfig::from_json_file(config_json()), folder_store());
  const double worst = check_all(model, 1e-4, true);
  std::printf("Wan transformer (folder, fp32) worst relative error %.3g\n", worst);
}

TEST(WanTransformer, RopeTablesMatchDiffusers) {
  Tensor cos, sin;
  wan_rope_tables(WanTransformerConfig::from_json_file(config_json()), 3, 2, 3, cos, sin);
  const Tensor wc = ref()->load_f32("rope.b1_f3_h4w6.freqs_cos"),
               ws = ref()->load_f32("rope.b1_f3_h4w6.freqs_sin");
  ASSERT_EQ(cos.numel(), wc.numel());
  EXPECT_LE(test::max_abs_diff(cos.data(), wc.data(), wc.numel()), 1e-6);
  EXPECT_LE(test::max_abs_diff(sin.data(), ws.data(), ws.numel()), 1e-6);
}

TEST(WanTransformer, SingleFileGivesTheFolderOutputs) {
  auto f = open_tensor_file(single_file());
  ASSERT_TRUE(is_wan_transformer_file(*f));
  EXPECT_FALSE(is_wan_transformer_diffusers(*f));
  const WeightStore single = wan_file_weights(f);
  const WanTransformerConfig cfg = WanTransformerConfig::from_weights(single);
  EXPECT_EQ(cfg, WanTransformerConfig::from_json_file(config_json()));
  const WeightStore folder = folder_store();
  EXPECT_EQ(WanTransformerConfig::from_weights(folder), cfg);
  for (const auto& [name, info] : single.entries()) {
    const Tensor a = single.get(name), b = folder.get(name);
    ASSERT_EQ(a.shape(), b.shape()) << name;
    EXPECT_EQ(test::max_abs_diff(a.data(), b.data(), a.numel()), 0.0) << name;
  }
  EXPECT_EQ(single.entries().size(), 69u);
  const double worst = check_all(WanTransformer(cfg, single), 1e-4, false);
  std::printf("Wan transformer (fp16 single file) worst relative error %.3g\n", worst);
}

TEST(WanTransformer, Bf16ComputeStaysClose) {
  const WanTransformer model(WanTransformerConfig::from_json_file(config_json()), folder_store(true));
  const double worst = check_all(model, 2e-2, false);
  std::printf("Wan transformer (bf16 compute) worst relative error %.3g\n", worst);
  EXPECT_GT(worst, 0.0);  // the bf16 path really ran
}

TEST(WanTransformer, PrefixedFileIsDetected) {
  // ComfyUI checkpoints carry model.diffusion_model. before every name
  auto f = open_tensor_file(single_file());
  std::vector<Tensor> keep;
  std::vector<TensorToWrite> out;
  for (const auto& [name, info] : f->tensors()) keep.push_back(f->load_f32(name));
  size_t i = 0;
  for (const auto& [name, info] : f->tensors()) {
    out.push_back({"model.diffusion_model." + name, DType::kF32, keep[i].shape(), keep[i].data()});
    ++i;
  }
  const std::string path = testing::TempDir() + "/wan_prefixed.safetensors";
  write_safetensors(path, out);
  auto g = open_tensor_file(path);
  ASSERT_TRUE(is_wan_transformer_file(*g));
  EXPECT_EQ(WanTransformerConfig::from_weights(wan_file_weights(g)),
            WanTransformerConfig::from_weights(wan_file_weights(f)));
  std::filesystem::remove(path);
}

TEST(WanTransformer, ImageEncoderConfigsAreUnsupported) {
  nlohmann::json j = read_json_file(config_json(), "test");
  EXPECT_EQ(WanTransformerConfig::from_json(j, "ok"), WanTransformerConfig::from_json_file(config_json()));
  for (const char* key : {"image_dim", "added_kv_proj_dim"}) {
    nlohmann::json k = j;
    k[key] = 1280;
    EXPECT_EQ(test::code_of([&] { WanTransformerConfig::from_json(k, "i2v"); }), ErrorCode::kUnsupportedModel)
        << key;
  }
  nlohmann::json q = j;
  q["qk_norm"] = "rms_norm";
  EXPECT_EQ(test::code_of([&] { WanTransformerConfig::from_json(q, "q"); }), ErrorCode::kUnsupportedModel);
  nlohmann::json bad = j;
  bad["attention_head_dim"] = 3;
  EXPECT_EQ(test::code_of([&] { WanTransformerConfig::from_json(bad, "bad"); }), ErrorCode::kCorruptFile);
}

TEST(WanTransformer, BadInputsAreClearErrors) {
  const WeightStore w = folder_store();
  const WanTransformer model(WanTransformerConfig::from_weights(w), w);
  EXPECT_EQ(test::code_of([&] { model.prepare_text(Tensor::zeros({7, 31})); }), ErrorCode::kShapeMismatch);
  EXPECT_EQ(test::code_of([&] { model.prepare_text(Tensor::zeros({2, 7, 32})); }), ErrorCode::kShapeMismatch);
  const WanContext ctx = model.prepare_text(Tensor::zeros({7, 32}));
  EXPECT_EQ(test::code_of([&] {
              model.forward(Tensor::zeros({1, 4, 4, 48}), std::vector<float>(4, 1.f), ctx);
            }),
            ErrorCode::kOk);
  EXPECT_EQ(test::code_of([&] {
              model.forward(Tensor::zeros({1, 3, 4, 48}), std::vector<float>(4, 1.f), ctx);
            }),
            ErrorCode::kShapeMismatch);
  EXPECT_EQ(test::code_of([&] {
              model.forward(Tensor::zeros({1, 4, 4, 16}), std::vector<float>(4, 1.f), ctx);
            }),
            ErrorCode::kShapeMismatch);
  EXPECT_EQ(test::code_of([&] {
              model.forward(Tensor::zeros({1, 4, 4, 48}), std::vector<float>(3, 1.f), ctx);
            }),
            ErrorCode::kShapeMismatch);
  EXPECT_EQ(test::code_of([&] {
              model.forward(Tensor::zeros({1, 4, 4, 48}), std::vector<float>(4, NAN), ctx);
            }),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(test::code_of([&] {
              model.forward(Tensor::zeros({1, 4, 4, 48}), std::vector<float>(4, 1.f), WanContext{});
            }),
            ErrorCode::kInvalidArgument);
  // another DiT's file is not a Wan transformer
  auto flux = open_tensor_file(test::fixtures() + "/flux-tiny/models/flux1-tiny-dev.safetensors");
  EXPECT_FALSE(is_wan_transformer_file(*flux));
  EXPECT_EQ(test::code_of([&] { wan_file_weights(flux); }), ErrorCode::kCorruptFile);
}

}  // namespace
}  // namespace vg
