// Z-Image transformer vs diffusers' ZImageTransformer2DModel (zimage-tiny fixture).
#include <filesystem>

#include "io/safetensors.h"
#include "io/tensor_file.h"
#include "io/weights.h"
#include "models/zimage.h"
#include "models/zimage_names.h"
#include "test_util.h"

namespace vg {
namespace {

std::string zimage() { return test::fixtures() + "/zimage-tiny"; }
std::string model_dir() { return zimage() + "/models/zimage-tiny"; }
std::string single_file() { return zimage() + "/models/z_image_turbo_tiny_bf16.safetensors"; }

WeightStore folder_store() {
  return zimage_weights_from_diffusers(open_component_weights(model_dir() + "/transformer", "transformer"));
}

// NCHW [16,1,H,W] (one frame) <-> NHWC [1,H,W,16].
Tensor to_nhwc(const Tensor& x) { return nchw_to_nhwc(x.reshape({1, x.dim(0), x.dim(2), x.dim(3)})); }

double check_all(const ZImageTransformer& model) {
  auto ref = open_tensor_file(zimage() + "/transformer/transformer.safetensors");
  double worst = 0;
  int calls = 0;
  for (const char* g : {"b1_64x64", "b1_96x64_nonsquare", "b2_64x64_cfgbatch", "b1_128x128"}) {
    const std::string p = std::string(g) + ".";
    for (const char* ts : {"t0p0", "t0p55"}) {
      const std::string c = p + ts + ".";
      if (!ref->has(c + "t")) continue;
      const Tensor t = ref->load_f32(c + "t");
      for (int i = 0; ref->has(p + "x." + std::to_string(i)); ++i) {
        const std::string si = std::to_string(i);
        ZImageTrace tr;
        const Tensor out = model.forward(to_nhwc(ref->load_f32(p + "x." + si)), ref->load_f32(p + "cap_feats." + si),
                                         t.data()[t.numel() == 1 ? 0 : i], &tr);
        const Tensor want = to_nhwc(ref->load_f32(c + "out." + si));
        if (out.shape() != want.shape()) {
          ADD_FAILURE() << c << si << ": shape " << shape_str(out.shape());
          continue;
        }
        const double e = test::rel_err(out, want);
        EXPECT_LE(e, 1e-4) << c << "out." << si;
        worst = std::max(worst, e);
        ++calls;
        if (t.numel() != 1) continue;  // the batched group stores batch-wide intermediates
        auto cmp = [&](const Tensor& got, const std::string& name) {
          const Tensor w = ref->load_f32(c + name);
          ASSERT_EQ(got.numel(), w.numel()) << c << name;
          const double err = test::rel_err(got.reshape(w.shape()), w);
          EXPECT_LE(err, 1e-4) << c << name << " " << i;
          worst = std::max(worst, err);
        };
        cmp(tr.adaln_input, "adaln_input");
        cmp(tr.x_embedded, "x_embedded");
        cmp(tr.x_after_noise_refiner, "x_after_noise_refiner");
        cmp(tr.cap_embedded, "cap_embedded");
        cmp(tr.cap_after_context_refiner, "cap_after_context_refiner");
        cmp(tr.unified_in, "unified_in");
        cmp(tr.unified_after_layers, "unified_after_layers");
        cmp(tr.final_layer_out, "final_layer_out");
      }
    }
  }
  EXPECT_GE(calls, 8);
  return worst;
}

TEST(ZImageTransformer, EveryStageMatchesDiffusers) {
  const WeightStore w = folder_store();
  const ZImageConfig cfg = ZImageConfig::from_json_file(model_dir() + "/transformer/config.json");
  const ZImageTransformer model(cfg, w);
  const double worst = check_all(model);
  std::printf("Z-Image transformer worst relative error %.3g\n", worst);
}

TEST(ZImageTransformer, SingleFileEqualsFolderAndConfigFromWeights) {
  auto f = open_tensor_file(single_file());
  ASSERT_TRUE(is_zimage_file(*f));
  EXPECT_FALSE(is_zimage_diffusers(*f));
  const WeightStore single = zimage_file_weights(f);
  const ZImageConfig from_file = ZImageConfig::from_weights(single);
  EXPECT_EQ(from_file, ZImageConfig::from_json_file(model_dir() + "/transformer/config.json"));
  const WeightStore folder = folder_store();
  for (const auto& [name, info] : single.entries()) {
    const Tensor a = single.get(name), b = folder.get(name);
    ASSERT_EQ(a.shape(), b.shape()) << name;
    EXPECT_EQ(test::max_abs_diff(a.data(), b.data(), a.numel()), 0.0) << name;
  }
  EXPECT_GE(single.entries().size(), 60u);
}

TEST(ZImageTransformer, PrefixedFileIsDetected) {
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
  const std::string path = testing::TempDir() + "/zimage_prefixed.safetensors";
  write_safetensors(path, out);
  auto g = open_tensor_file(path);
  ASSERT_TRUE(is_zimage_file(*g));
  const WeightStore w = zimage_file_weights(g);
  EXPECT_EQ(ZImageConfig::from_weights(w), ZImageConfig::from_weights(zimage_file_weights(f)));
  std::filesystem::remove(path);
}

TEST(ZImageTransformer, BadInputsAreClearErrors) {
  const WeightStore w = folder_store();
  const ZImageTransformer model(ZImageConfig::from_weights(w), w);
  EXPECT_EQ(test::code_of([&] { model.forward(Tensor::zeros({1, 8, 8, 16}), Tensor::zeros({5, 31}), 0.5f); }),
            ErrorCode::kShapeMismatch);
  EXPECT_EQ(test::code_of([&] { model.forward(Tensor::zeros({1, 7, 8, 16}), Tensor::zeros({5, 32}), 0.5f); }),
            ErrorCode::kShapeMismatch);
  // a FLUX file is not a Z-Image transformer
  auto flux = open_tensor_file(test::fixtures() + "/flux-tiny/models/flux1-tiny-dev.safetensors");
  EXPECT_FALSE(is_zimage_file(*flux));
  EXPECT_EQ(test::code_of([&] { zimage_file_weights(flux); }), ErrorCode::kCorruptFile);
}

}  // namespace
}  // namespace vg
