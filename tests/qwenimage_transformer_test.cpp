// Qwen-Image transformer vs diffusers' QwenImageTransformer2DModel (qwenimage-tiny fixture).
#include <cstring>
#include <filesystem>

#include "io/gguf.h"
#include "io/gguf_writer.h"
#include "io/tensor_file.h"
#include "io/weights.h"
#include "models/flux_names.h"
#include "models/qwenimage.h"
#include "quant/ggml_types.h"
#include "quant/quantize.h"
#include "test_util.h"

namespace vg {
namespace {

std::string root() { return test::fixtures() + "/qwenimage-tiny"; }
std::string folder() { return root() + "/models/qwenimage-tiny/transformer"; }
std::string single_file() { return root() + "/models/qwen_image_tiny_bf16.safetensors"; }
std::shared_ptr<TensorFile> ref_file() {
  return open_tensor_file(root() + "/transformer/transformer.safetensors");
}

WeightStore folder_store() { return open_component_weights(folder(), "transformer"); }
QwenImageConfig folder_config() { return QwenImageConfig::from_json_file(folder() + "/config.json"); }

// Item i of a [B, T, D] (first n rows) or [B, D] tensor.
Tensor item(const Tensor& t, int64_t i, int64_t n = -1) {
  if (t.rank() == 2) {
    Tensor o({1, t.dim(1)});
    std::memcpy(o.data(), t.data() + i * t.dim(1), t.dim(1) * sizeof(float));
    return o;
  }
  if (n < 0) n = t.dim(1);
  Tensor o({1, n, t.dim(2)});
  std::memcpy(o.data(), t.data() + i * t.dim(1) * t.dim(2), n * t.dim(2) * sizeof(float));
  return o;
}

// One half (0 = cos, 1 = sin) of a stored (cos, sin) [S, hd/2, 2] table, first n rows, each value
// twice: the layout of the trace's [S, hd] tables.
Tensor rope_half(const Tensor& t, int part, int64_t n) {
  const int64_t pairs = t.dim(1);
  Tensor o({n, 2 * pairs});
  for (int64_t r = 0; r < n; ++r)
    for (int64_t j = 0; j < pairs; ++j)
      o.data()[r * 2 * pairs + 2 * j] = o.data()[r * 2 * pairs + 2 * j + 1] =
          t.data()[(r * pairs + j) * 2 + part];
  return o;
}

// Runs every stored group, timestep and batch item through `model`; the worst
// relative error of every stage (and of `out` alone).
struct Errors {
  double out = 0, stage = 0;
  int calls = 0;
};

void check_all(const QwenImageTransformer& model, Errors& e) {
  auto ref = ref_file();
  const auto& groups = test::fixture_manifest("qwenimage-tiny")["transformer"]["groups"];
  for (auto gi = groups.begin(); gi != groups.end(); ++gi) {
    const auto& info = gi.value();
    const int64_t h = info["img_shapes"][0][0][1].get<int64_t>(),
                  w = info["img_shapes"][0][0][2].get<int64_t>();
    const std::string p = gi.key() + ".";
    const Tensor img = ref->load_f32(p + "hidden_states"), txt = ref->load_f32(p + "encoder_hidden_states");
    const Tensor mask = ref->load_f32(p + "encoder_hidden_states_mask");
    for (auto ti = info["timesteps"].begin(); ti != info["timesteps"].end(); ++ti) {
      const std::string c = p + ti.key() + ".";
      const Tensor ts = ref->load_f32(c + "timestep");
      for (int64_t i = 0; i < img.dim(0); ++i) {
        int64_t valid = 0;  // the valid text rows lead (right padding)
        while (valid < mask.dim(1) && mask.data()[i * mask.dim(1) + valid] != 0) ++valid;
        EXPECT_EQ(valid, info["cap_lens"][i].get<int64_t>()) << c;
        QwenImageTrace tr;
        const Tensor out = model.forward(item(img, i), item(txt, i, valid), ts.data()[i], h, w, &tr);
        auto cmp = [&](const Tensor& got, const Tensor& want, const std::string& name) {
          ASSERT_EQ(got.numel(), want.numel()) << c << name;
          const double r = test::rel_err(got, want);
          EXPECT_LE(r, 1e-4) << c << name << " item " << i;
          e.stage = std::max(e.stage, r);
          if (name == "out") e.out = std::max(e.out, r);
        };
        auto stored = [&](const std::string& name, int64_t n = -1) {
          return item(ref->load_f32(c + name), i, n);
        };
        cmp(tr.temb, stored("temb"), "temb");
        cmp(tr.img_in, stored("img_in"), "img_in");
        cmp(tr.txt_norm, stored("txt_norm", valid), "txt_norm");
        cmp(tr.txt_in, stored("txt_in", valid), "txt_in");
        const Tensor pi = ref->load_f32(c + "pos_embed.0"), pt = ref->load_f32(c + "pos_embed.1");
        cmp(tr.img_rope_cos, rope_half(pi, 0, h * w), "img rope cos");
        cmp(tr.img_rope_sin, rope_half(pi, 1, h * w), "img rope sin");
        cmp(tr.txt_rope_cos, rope_half(pt, 0, valid), "txt rope cos");
        cmp(tr.txt_rope_sin, rope_half(pt, 1, valid), "txt rope sin");
        ASSERT_EQ(tr.block_txt.size(), 2u);
        cmp(tr.block_txt[0], stored("block0_out.0", valid), "block0_out.0");
        cmp(tr.block_img[0], stored("block0_out.1"), "block0_out.1");
        cmp(tr.norm_out, stored("norm_out"), "norm_out");
        cmp(out, stored("out"), "out");
        ++e.calls;
      }
    }
  }
}

TEST(QwenImageTransformer, EveryGroupAndStageMatchesDiffusers) {
  const WeightStore w = folder_store();
  const QwenImageTransformer model(folder_config(), w);
  Errors e;
  check_all(model, e);
  EXPECT_EQ(e.calls, 2 + 2 + 3 * 2 + 2);  // b2: two items at three timesteps
  std::printf("[qwenimage] worst rel err: out %.3g, any stage %.3g\n", e.out, e.stage);
}

TEST(QwenImageTransformer, ConfigFromJsonAndWeights) {
  const QwenImageConfig c = folder_config();
  EXPECT_EQ(c.num_layers, 2);
  EXPECT_EQ(c.axes_dims_rope, (std::vector<int64_t>{4, 6, 6}));
  EXPECT_EQ(QwenImageConfig::from_weights(folder_store()), c);
  EXPECT_EQ(QwenImageConfig::from_weights(qwenimage_file_weights(open_tensor_file(single_file()))), c);
  EXPECT_EQ(QwenImageConfig::from_json(nlohmann::json::object(), "defaults"), QwenImageConfig{});
  EXPECT_EQ(QwenImageConfig::from_json({{"out_channels", nullptr}}, "null out").out_channels, 64);
  EXPECT_EQ(test::code_of([] {
              QwenImageConfig::from_json({{"zero_cond_t", true}}, "edit");
            }),
            ErrorCode::kUnsupportedModel);
  EXPECT_EQ(test::code_of([] {
              QwenImageConfig::from_json({{"axes_dims_rope", {4, 6}}}, "bad");
            }),
            ErrorCode::kCorruptFile);
  EXPECT_EQ(test::code_of([] {
              QwenImageConfig::from_json({{"num_layers", "two"}}, "bad");
            }),
            ErrorCode::kCorruptFile);
}

TEST(QwenImageTransformer, PositionsAreCentred) {
  const Tensor p = qwenimage_positions(5, 2, 3);  // h 5, w 2, 3 text tokens
  const float* d = p.data();
  for (int j = 0; j < 3; ++j) EXPECT_EQ(d[j * 3 + 1], 2 + j);  // max(5/2, 2/2) + j
  EXPECT_EQ(d[3 * 3 + 1], -3);                                 // first image row: -(5 - 5/2)
  EXPECT_EQ(d[3 * 3 + 2], -1);                                 // first column: -(2 - 2/2)
  EXPECT_EQ(d[(3 + 9) * 3 + 1], 1);                            // last row: 5/2 - 1
  EXPECT_EQ(d[(3 + 9) * 3 + 2], 0);
}

// A copy of the single file's tensors (stored bytes), renamed by `prefix`, without `skip`.
std::string write_copy(const std::string& name, const std::string& prefix, const std::string& skip = "") {
  auto f = open_tensor_file(single_file());
  std::vector<TensorToWrite> out;
  for (const auto& [n, info] : f->tensors())
    if (n != skip) out.push_back({prefix + n, info.dtype, info.shape, info.data});
  const std::string dir = ::testing::TempDir() + "/qwenimage_test";
  std::filesystem::create_directories(dir);
  write_safetensors(dir + "/" + name, out);
  return dir + "/" + name;
}

Tensor run_b1(const QwenImageTransformer& m) {
  auto ref = ref_file();
  const std::string p = "b1_96x64_nonsquare.";
  return m.forward(ref->load_f32(p + "hidden_states"), ref->load_f32(p + "encoder_hidden_states"), 0.55f, 4,
                   6);
}

TEST(QwenImageTransformer, SingleFilesEqualTheFolder) {
  const auto file = open_tensor_file(single_file());
  EXPECT_TRUE(is_qwenimage_file(*file));
  EXPECT_FALSE(is_flux_diffusers(*file));
  EXPECT_FALSE(is_qwenimage_file(
      *open_tensor_file(root() + "/models/qwenimage-tiny/vae/diffusion_pytorch_model.safetensors")));
  const WeightStore d = folder_store(), s = qwenimage_file_weights(file);
  int n = 0;
  for (const auto& [name, info] : d.entries()) {
    const Tensor a = d.get(name), b = s.get(name);
    ASSERT_EQ(a.shape(), b.shape()) << name;
    EXPECT_EQ(test::max_abs_diff(a.data(), b.data(), a.numel()), 0.0) << name;
    ++n;
  }
  EXPECT_EQ(n, 77);
  const QwenImageConfig cfg = folder_config();
  const Tensor want = run_b1(QwenImageTransformer(cfg, d));
  const Tensor got = run_b1(QwenImageTransformer(cfg, s));
  EXPECT_EQ(test::max_abs_diff(want.data(), got.data(), want.numel()), 0.0);
  // ComfyUI-style prefix: detected, stripped, the same numbers
  const auto pre = open_tensor_file(write_copy("prefixed.safetensors", kQwenImagePrefix));
  EXPECT_TRUE(is_qwenimage_file(*pre));
  const WeightStore ps = qwenimage_file_weights(pre);
  EXPECT_EQ(QwenImageConfig::from_weights(ps), cfg);
  const Tensor pg = run_b1(QwenImageTransformer(cfg, ps));
  EXPECT_EQ(test::max_abs_diff(want.data(), pg.data(), want.numel()), 0.0);
}

// A GGUF of the transformer as city96 writes them (diffusers names, 2-D
// weights Q8_0, the rest F32): it loads by name and stays close.
TEST(QwenImageTransformer, GgufQ8_0Runs) {
  auto src = open_tensor_file(single_file());
  std::vector<Tensor> keep;
  keep.reserve(src->tensors().size());
  std::vector<GgufTensorToWrite> out;
  for (const auto& [name, info] : src->tensors()) {
    keep.push_back(src->load_f32(name));
    const Tensor& t = keep.back();
    const std::vector<int64_t> ne(info.shape.rbegin(), info.shape.rend());
    if (ne.size() == 2 && ne[0] % 32 == 0)
      out.push_back({name, kGgmlQ8_0, ne, [&t, ne](uint8_t* dst) {
                       const size_t rb = ggml_row_bytes(kGgmlQ8_0, ne[0]);
                       for (int64_t r = 0; r < ne[1]; ++r)
                         quantize_row(kGgmlQ8_0, t.data() + r * ne[0], dst + r * rb, ne[0]);
                     }});
    else
      out.push_back({name, kGgmlF32, ne, [&t](uint8_t* dst) { std::memcpy(dst, t.data(), t.numel() * 4); }});
  }
  const std::string dir = ::testing::TempDir() + "/qwenimage_test";
  std::filesystem::create_directories(dir);
  write_gguf(dir + "/qwen-image-tiny-Q8_0.gguf", {{"general.architecture", gguf_string("qwen_image")}}, out);
  auto file = open_tensor_file(dir + "/qwen-image-tiny-Q8_0.gguf");
  ASSERT_TRUE(is_qwenimage_file(*file));
  const Tensor want = ref_file()->load_f32("b1_96x64_nonsquare.t0p55.out");
  double errs[2];
  for (bool dequant : {false, true}) {
    WeightStore w = qwenimage_file_weights(file);
    w.set_dequantize_blocks(dequant);
    const QwenImageConfig cfg = QwenImageConfig::from_weights(w);
    EXPECT_EQ(cfg, folder_config());
    errs[dequant] = test::rel_err(run_b1(QwenImageTransformer(cfg, w)), want);
  }
  std::printf("[qwenimage q8_0] rel err dequantised %.3g, native blocks %.3g\n", errs[1], errs[0]);
  EXPECT_GT(errs[1], 0.0);  // it was quantised
  EXPECT_LE(errs[1], 2e-2);
  EXPECT_LE(errs[0], 3e-2);
}

TEST(QwenImageTransformer, Bf16ComputeStaysClose) {
  WeightStore w = folder_store();
  w.set_compute_bf16(true);
  const double e = test::rel_err(run_b1(QwenImageTransformer(folder_config(), w)),
                                 ref_file()->load_f32("b1_96x64_nonsquare.t0p55.out"));
  std::printf("[qwenimage bf16] rel err %.3g\n", e);
  EXPECT_LE(e, 2e-2);
}

TEST(QwenImageTransformer, MissingWeightsAndBadInputs) {
  const QwenImageConfig cfg = folder_config();
  // a missing tensor: its name in a shape_mismatch; a missing q/k/v part: corrupt_file
  const std::string gone = "transformer_blocks.1.txt_mlp.net.2.weight";
  const WeightStore w1 = qwenimage_file_weights(open_tensor_file(write_copy("no_mlp.safetensors", "", gone)));
  try {
    QwenImageTransformer m(cfg, w1);
    ADD_FAILURE() << "loaded without " << gone;
  } catch (const VgException& e) {
    EXPECT_EQ(e.code(), ErrorCode::kShapeMismatch);
    EXPECT_NE(std::string(e.what()).find(gone), std::string::npos) << e.what();
  }
  const WeightStore w2 = qwenimage_file_weights(
      open_tensor_file(write_copy("no_to_k.safetensors", "", "transformer_blocks.0.attn.to_k.weight")));
  EXPECT_EQ(test::code_of([&] { QwenImageTransformer m(cfg, w2); }), ErrorCode::kCorruptFile);
  const auto no_probe = open_tensor_file(write_copy("no_probe.safetensors", "", "txt_norm.weight"));
  EXPECT_FALSE(is_qwenimage_file(*no_probe));
  EXPECT_EQ(test::code_of([&] { qwenimage_file_weights(no_probe); }), ErrorCode::kCorruptFile);
  QwenImageConfig deeper = cfg;
  deeper.num_layers = 3;
  EXPECT_EQ(test::code_of([&] { QwenImageTransformer m(deeper, folder_store()); }),
            ErrorCode::kShapeMismatch);
  // inputs
  const WeightStore w = folder_store();
  const QwenImageTransformer m(cfg, w);
  auto ref = ref_file();
  const Tensor img = ref->load_f32("b1_96x64_nonsquare.hidden_states"),
               txt = ref->load_f32("b1_96x64_nonsquare.encoder_hidden_states");
  EXPECT_EQ(test::code_of([&] { m.forward(img, txt, 1.0f, 6, 4); }),
            ErrorCode::kOk);  // same count, other grid
  EXPECT_EQ(test::code_of([&] { m.forward(img, txt, 1.0f, 4, 4); }), ErrorCode::kShapeMismatch);
  EXPECT_EQ(test::code_of([&] {
              m.forward(img, Tensor({1, 5, 16}), 1.0f, 4, 6);
            }),
            ErrorCode::kShapeMismatch);
  EXPECT_EQ(test::code_of([&] {
              m.forward(img, Tensor({1, 0, 32}), 1.0f, 4, 6);
            }),
            ErrorCode::kShapeMismatch);
  EXPECT_EQ(test::code_of([&] { m.forward(img, txt, NAN, 4, 6); }), ErrorCode::kInvalidArgument);
  // the grid matters (RoPE): 6x4 is not 4x6
  const Tensor a = m.forward(img, txt, 1.0f, 4, 6), b = m.forward(img, txt, 1.0f, 6, 4);
  EXPECT_GT(test::max_abs_diff(a.data(), b.data(), a.numel()), 1e-4);
}

}  // namespace
}  // namespace vg
