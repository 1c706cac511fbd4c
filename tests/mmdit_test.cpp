// SD3.5 MMDiT transformer vs diffusers' SD3Transformer2DModel (sd3-tiny fixtures).
#include <cstdio>
#include <functional>

#include "backend/cpu/ops.h"
#include "models/mmdit.h"
#include "models/mmdit_names.h"
#include "test_util.h"

namespace vg {
namespace {

std::string sd3() { return test::fixtures() + "/sd3-tiny"; }
std::string single_file() { return sd3() + "/models/sd3.5-tiny-medium.safetensors"; }
std::string folder() { return sd3() + "/models/sd3-tiny/transformer"; }
MmditConfig folder_config() { return MmditConfig::from_json_file(folder() + "/config.json"); }

struct Inputs {
  Tensor latents, context, pooled;
};
Inputs inputs(const SafetensorsFile& ref, const std::string& g) {
  return {nchw_to_nhwc(ref.load_f32(g + ".hidden_states")), ref.load_f32(g + ".encoder_hidden_states"),
          ref.load_f32(g + ".pooled_projections")};
}
std::vector<float> to_vec(const Tensor& t) { return std::vector<float>(t.data(), t.data() + t.numel()); }

TEST(Mmdit, SingleFileMatchesDiffusersEveryStage) {
  auto w = open_mmdit_weights(single_file());
  MmditTransformer model(folder_config(), w);
  auto ref = SafetensorsFile::open(sd3() + "/transformer/transformer.safetensors");
  const double tol = 1e-4;
  int calls = 0, stages = 0;
  double worst = 0;
  for (const char* group : {"b1_lat8x12", "b2_lat12x8"}) {
    const Inputs in = inputs(*ref, group);
    for (auto& [name, info] : ref->tensors()) {
      const std::string g = std::string(group) + ".t";
      if (name.rfind(g, 0) != 0 || name.size() < 10 || name.substr(name.size() - 9) != ".timestep") continue;
      const std::string c = name.substr(0, name.size() - 9);
      MmditTrace tr;
      Tensor out = model.forward(in.latents, in.context, in.pooled, to_vec(ref->load_f32(name)), {}, &tr);
      ++calls;
      auto check = [&](const Tensor& got, const std::string& key) {
        if (!ref->has(key)) return;
        const double e = test::rel_err(got, ref->load_f32(key));
        EXPECT_LE(e, tol) << key;
        worst = std::max(worst, e);
        ++stages;
      };
      check(tr.patch_embed, c + ".patch_embed");
      check(tr.temb, c + ".temb");
      check(tr.context_embedder, c + ".context_embedder");
      for (size_t i = 0; i < tr.block_hidden.size(); ++i) {
        check(tr.block_hidden[i], c + ".block" + std::to_string(i) + ".hidden_states");
        if (!tr.block_context[i].empty())
          check(tr.block_context[i], c + ".block" + std::to_string(i) + ".encoder_hidden_states");
      }
      check(tr.norm_out, c + ".norm_out");
      check(nhwc_to_nchw(out), c + ".out");
      if (ref->has(c + ".skip_layers_1.out")) {
        Tensor skip = model.forward(in.latents, in.context, in.pooled, to_vec(ref->load_f32(name)), {1});
        check(nhwc_to_nchw(skip), c + ".skip_layers_1.out");
        // and skipping really changes the result
        EXPECT_GT(test::rel_err(skip, out), 1e-3);
      }
    }
  }
  EXPECT_EQ(calls, 4);
  std::printf("worst relative error over %d stages: %.3g\n", stages, worst);
  EXPECT_GE(stages, 4 * 5 + 2 * 5 + 1);  // 5 whole-model stages per call + b1's blocks + skip
}

TEST(Mmdit, DiffusersFolderGivesIdenticalOutput) {
  auto wf = open_mmdit_weights(folder());
  auto ws = open_mmdit_weights(single_file());
  ASSERT_TRUE(is_diffusers_mmdit(wf));  // the diffusers names stay visible next to the Stability ones
  ASSERT_FALSE(is_diffusers_mmdit(ws));
  MmditTransformer a(folder_config(), wf), b(folder_config(), ws);
  auto ref = SafetensorsFile::open(sd3() + "/transformer/transformer.safetensors");
  const Inputs in = inputs(*ref, "b2_lat12x8");
  const std::vector<float> ts{437.5f, 250.0f};
  Tensor oa = a.forward(in.latents, in.context, in.pooled, ts);
  Tensor ob = b.forward(in.latents, in.context, in.pooled, ts);
  ASSERT_EQ(oa.shape(), ob.shape());
  EXPECT_EQ(test::max_abs_diff(oa.data(), ob.data(), oa.numel()), 0.0);
  Tensor sa = a.forward(in.latents, in.context, in.pooled, ts, {2});  // the pre-only block skipped
  Tensor sb = b.forward(in.latents, in.context, in.pooled, ts, {2});
  EXPECT_EQ(test::max_abs_diff(sa.data(), sb.data(), sa.numel()), 0.0);
}

TEST(Mmdit, ConfigInferredFromWeightsEqualsConfigJson) {
  const MmditConfig want = folder_config();
  EXPECT_EQ(want.qk_norm, "rms_norm");
  EXPECT_EQ(want.dual_attention_layers, std::vector<int64_t>{0});
  const MmditConfig got = MmditConfig::from_weights(open_mmdit_weights(single_file()));
  EXPECT_TRUE(got == want) << "layers " << got.num_layers << " heads " << got.num_attention_heads << "x"
                           << got.attention_head_dim << " sample " << got.sample_size << " pos "
                           << got.pos_embed_max_size << " out " << got.out_channels;
  EXPECT_TRUE(MmditConfig::from_weights(open_mmdit_weights(folder())) == want);
}

TEST(Mmdit, RejectsBadInputsAndWeights) {
  auto w = open_mmdit_weights(single_file());
  MmditTransformer model(folder_config(), w);
  Tensor ctx = Tensor::zeros({1, 5, 128}), pooled = Tensor::zeros({1, 96});
  // pos_embed_max_size 16 patches of 2: at most 32x32 latents
  EXPECT_EQ(test::code_of([&] { model.forward(Tensor::zeros({1, 34, 8, 16}), ctx, pooled, {500}); }),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(test::code_of([&] { model.forward(Tensor::zeros({1, 7, 8, 16}), ctx, pooled, {500}); }),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(test::code_of([&] { model.forward(Tensor::zeros({1, 8, 8, 16}), ctx, pooled, {500}, {3}); }),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(test::code_of([&] { model.forward(Tensor::zeros({1, 8, 8, 16}), Tensor::zeros({1, 5, 64}), pooled, {500}); }),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(test::code_of([&] { model.forward(Tensor::zeros({1, 32, 32, 16}), ctx, pooled, {500}); }), ErrorCode::kOk);
  // a config that asks for more blocks than the file has
  MmditConfig more = folder_config();
  more.num_layers = 4;
  EXPECT_NE(test::code_of([&] { MmditTransformer m(more, w); }), ErrorCode::kOk);
  // wrong head size for the stored RMSNorm scales
  MmditConfig heads = folder_config();
  heads.attention_head_dim = 32;
  heads.num_attention_heads = 2;
  EXPECT_EQ(test::code_of([&] { MmditTransformer m(heads, w); }), ErrorCode::kShapeMismatch);
  EXPECT_EQ(test::code_of([&] { MmditConfig::from_weights(open_mmdit_weights(sd3() + "/models/sd3-tiny/vae")); }),
            ErrorCode::kCorruptFile);
}

}  // namespace
}  // namespace vg
