// diffusers folder variants: fp16 / bf16 weights and sharded safetensors.
#include <filesystem>
#include <nlohmann/json.hpp>

#include "backend/cpu/ops.h"
#include "io/atomic_file.h"
#include "io/weights.h"
#include "quant/quantize.h"
#include "test_util.h"
#include "visiongen/visiongen.h"

namespace vg {
namespace {

namespace fs = std::filesystem;

uint16_t to_f16(float f) { return f32_to_f16(f); }  // round to nearest even, as a cast to _Float16
uint16_t to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return static_cast<uint16_t>((u + 0x7FFF + ((u >> 16) & 1)) >> 16);
}

// Rewrites `src` as `dst` with every tensor in `dtype` (F16/BF16).
void write_converted(const std::string& src, const std::string& dst, DType dtype) {
  auto f = SafetensorsFile::open(src);
  std::vector<std::vector<uint16_t>> keep;
  std::vector<TensorToWrite> out;
  for (auto& [name, info] : f->tensors()) {
    Tensor t = f->load_f32(name);
    keep.emplace_back(t.numel());
    for (int64_t i = 0; i < t.numel(); ++i) keep.back()[i] = dtype == DType::kF16 ? to_f16(t.data()[i]) : to_bf16(t.data()[i]);
    out.push_back({name, dtype, info.shape, keep.back().data()});
  }
  write_safetensors(dst, out);
}

double image_diff(const Image& a, const Image& b) {
  double m = 0;
  for (size_t i = 0; i < a.pixels.size(); ++i) m = std::max(m, std::fabs(double(a.pixels[i]) - b.pixels[i]));
  return m;
}

Image generate(const std::string& model) {
  auto e = Engine::load(model);
  EXPECT_TRUE(e) << (e ? "" : e.error().to_string());
  GenerateParams p;
  p.prompt = "a photograph of an astronaut riding a horse";
  p.steps = 4;
  p.seed = 5;
  p.width = p.height = 64;
  auto r = (*e)->generate(p);
  EXPECT_TRUE(r);
  return r->images[0];
}

TEST(ModelFiles, Fp16VariantAndShardedWeightsLoad) {
  const std::string dir = (fs::path(testing::TempDir()) / "vg_fp16").string();
  fs::remove_all(dir);
  fs::copy(test::tiny_model(), dir, fs::copy_options::recursive);
  // UNet as an fp16 variant only.
  write_converted(test::tiny_model() + "/unet/diffusion_pytorch_model.safetensors",
                  dir + "/unet/diffusion_pytorch_model.fp16.safetensors", DType::kF16);
  fs::remove(dir + "/unet/diffusion_pytorch_model.safetensors");
  // VAE split into two shards with an index.
  auto vae = SafetensorsFile::open(test::tiny_model() + "/vae/diffusion_pytorch_model.safetensors");
  std::vector<TensorToWrite> a, b;
  nlohmann::json index;
  int i = 0;
  for (auto& [name, info] : vae->tensors()) {
    auto& part = (i++ % 2) ? b : a;
    part.push_back({name, info.dtype, info.shape, info.data});
    index["weight_map"][name] = (&part == &a) ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
  }
  fs::remove(dir + "/vae/diffusion_pytorch_model.safetensors");
  write_safetensors(dir + "/vae/model-00001-of-00002.safetensors", a);
  write_safetensors(dir + "/vae/model-00002-of-00002.safetensors", b);
  write_file_atomic(dir + "/vae/diffusion_pytorch_model.safetensors.index.json", index.dump());

  Image ref = generate(test::tiny_model());
  Image half = generate(dir);
  // f16 weights change the result slightly but not wholesale.
  EXPECT_LE(image_diff(ref, half), 40.0);
  size_t close = 0;
  for (size_t k = 0; k < ref.pixels.size(); ++k) close += std::abs(int(ref.pixels[k]) - int(half.pixels[k])) <= 8;
  EXPECT_GE(static_cast<double>(close) / ref.pixels.size(), 0.95);

  // A shard that lacks a listed tensor is a corrupt_file error.
  index["weight_map"]["extra.weight"] = "model-00001-of-00002.safetensors";
  write_file_atomic(dir + "/vae/diffusion_pytorch_model.safetensors.index.json", index.dump());
  auto e = Engine::load(dir);
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().code, ErrorCode::kCorruptFile);
  // Shard paths may not escape the folder.
  index["weight_map"]["extra.weight"] = "../../etc/passwd";
  write_file_atomic(dir + "/vae/diffusion_pytorch_model.safetensors.index.json", index.dump());
  e = Engine::load(dir);
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().code, ErrorCode::kCorruptFile);
  fs::remove_all(dir);
}

TEST(ModelFiles, Bf16WeightsDecodeToNearbyFloats) {
  const std::string path = testing::TempDir() + "/bf16.safetensors";
  write_converted(test::tiny_model() + "/text_encoder/model.safetensors", path, DType::kBF16);
  auto f32 = SafetensorsFile::open(test::tiny_model() + "/text_encoder/model.safetensors");
  auto bf = SafetensorsFile::open(path);
  const std::string n = "text_model.final_layer_norm.weight";
  EXPECT_EQ(bf->info(n).dtype, DType::kBF16);
  Tensor a = f32->load_f32(n), b = bf->load_f32(n);
  for (int64_t i = 0; i < a.numel(); ++i) EXPECT_NEAR(a.data()[i], b.data()[i], std::fabs(a.data()[i]) / 128);
  fs::remove(path);
}

// float32 weights are used where they lie in the mapped file: no copy, and a
// write through one stays private (the file and other mappings are unchanged).
TEST(ModelFiles, Float32WeightsAreUsedInPlaceFromTheMapping) {
  const std::string path = testing::TempDir() + "/inplace.safetensors";
  std::vector<float> v(4096);
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i) * 0.5f;
  write_safetensors(path, {{"w", DType::kF32, {64, 64}, v.data()}});
  const std::string before = read_file(path);
  {
    WeightStore ws;
    auto file = SafetensorsFile::open(path);
    ws.add_file(file);
    Tensor a = ws.get("w", {64, 64});
    EXPECT_TRUE(file->contains(a.data(), 4096 * sizeof(float)));
    EXPECT_EQ(a.data(), reinterpret_cast<const float*>(file->info("w").data));
    EXPECT_EQ(a.data()[4095], 2047.5f);
    Tensor as_conv = ws.get("w", {64, 64, 1, 1});  // a 1x1 convolution's view of the same weights
    EXPECT_EQ(as_conv.shape(), (Shape{64, 64, 1, 1}));
    EXPECT_EQ(as_conv.data(), a.data());
    as_conv = Tensor();
    a.data()[7] = -1.0f;  // copy-on-write: private to this mapping
    EXPECT_EQ(SafetensorsFile::open(path)->load_f32("w").data()[7], 3.5f);
  }
  EXPECT_EQ(read_file(path), before);
  fs::remove(path);
}

TEST(ModelFiles, ShapeMismatchBetweenConfigAndWeights) {
  const std::string dir = (fs::path(testing::TempDir()) / "vg_shape").string();
  fs::remove_all(dir);
  fs::copy(test::tiny_model(), dir, fs::copy_options::recursive);
  auto j = nlohmann::json::parse(read_file(dir + "/unet/config.json"));
  j["block_out_channels"] = {64, 64};
  write_file_atomic(dir + "/unet/config.json", j.dump());
  auto e = Engine::load(dir);
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().code, ErrorCode::kShapeMismatch);
  EXPECT_NE(e.error().message.find("config"), std::string::npos);
  fs::remove_all(dir);
}

TEST(Attention, TiledMatchesNaiveAndCausal) {
  const int64_t b = 2, tq = 150, tk = 130, heads = 3, d = 5, c = heads * d;
  Tensor q({b, tq, c}), k({b, tk, c}), v({b, tk, c});
  uint32_t x = 1;
  for (Tensor* t : {&q, &k, &v})
    for (int64_t i = 0; i < t->numel(); ++i) t->data()[i] = static_cast<float>((x = x * 1664525 + 1013904223) >> 8) / 16777216.0f - 0.5f;
  for (bool causal : {false, true}) {
    Tensor qq = causal ? slice_batch(k, 0, b) : q;  // causal needs tq == tk
    const int64_t n = qq.dim(1);
    Tensor out = attention(qq, k, v, static_cast<int>(heads), causal);
    for (int64_t bi = 0; bi < b; ++bi)
      for (int64_t h = 0; h < heads; ++h)
        for (int64_t i = 0; i < n; i += 7) {
          std::vector<double> s(tk);
          double mx = -1e30, sum = 0;
          const int64_t valid = causal ? i + 1 : tk;
          for (int64_t j = 0; j < valid; ++j) {
            double dot = 0;
            for (int64_t e = 0; e < d; ++e) dot += qq.data()[(bi * n + i) * c + h * d + e] * k.data()[(bi * tk + j) * c + h * d + e];
            s[j] = dot / std::sqrt(double(d));
            mx = std::max(mx, s[j]);
          }
          for (int64_t j = 0; j < valid; ++j) sum += (s[j] = std::exp(s[j] - mx));
          for (int64_t e = 0; e < d; ++e) {
            double o = 0;
            for (int64_t j = 0; j < valid; ++j) o += s[j] / sum * v.data()[(bi * tk + j) * c + h * d + e];
            EXPECT_NEAR(out.data()[(bi * n + i) * c + h * d + e], o, 1e-5);
          }
        }
  }
}

}  // namespace
}  // namespace vg
