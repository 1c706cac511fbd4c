// An SD2-style single file (OpenCLIP text encoder with fused qkv) loads and
// gives the same image as the equivalent diffusers folder.
#include <filesystem>
#include <nlohmann/json.hpp>

#include "io/weights.h"
#include "pipelines/ldm_names.h"
#include "test_util.h"
#include "visiongen/visiongen.h"

namespace vg {
namespace {

namespace fs = std::filesystem;

TEST(LdmSd2, OpenClipCheckpointMatchesDiffusersFolder) {
  const std::string root = (fs::path(testing::TempDir()) / "vg_sd2").string();
  fs::remove_all(root);
  const std::string folder = root + "/folder";
  fs::create_directories(root);
  fs::copy(test::tiny_model(), folder, fs::copy_options::recursive);
  // The folder twin: gelu text encoder and SD2's "!" padding.
  auto tc = nlohmann::json::parse(read_file(folder + "/text_encoder/config.json"));
  tc["hidden_act"] = "gelu";
  write_file_atomic(folder + "/text_encoder/config.json", tc.dump());
  auto sm = nlohmann::json::parse(read_file(folder + "/tokenizer/special_tokens_map.json"));
  sm["pad_token"] = "!";
  write_file_atomic(folder + "/tokenizer/special_tokens_map.json", sm.dump());
  auto tcfg = nlohmann::json::parse(read_file(folder + "/tokenizer/tokenizer_config.json"));
  tcfg["pad_token"] = "!";
  write_file_atomic(folder + "/tokenizer/tokenizer_config.json", tcfg.dump());

  // Single files use SD's published scheduler config, which has no
  // timestep_spacing key (each sampler's class default applies).
  auto sc = nlohmann::json::parse(read_file(folder + "/scheduler/scheduler_config.json"));
  sc.erase("timestep_spacing");
  write_file_atomic(folder + "/scheduler/scheduler_config.json", sc.dump());
  std::vector<TensorToWrite> out;
  std::vector<WeightStore> keep;
  std::vector<std::vector<float>> owned;
  keep.push_back(open_component_weights(test::tiny_model() + "/unet", "unet"));
  for (auto& [n, i] : keep.back().entries())
    out.push_back({unet_to_ldm(n, 2, {true, false}), i->dtype, i->shape, i->data});
  keep.push_back(open_component_weights(test::tiny_model() + "/vae", "vae"));
  for (auto& [n, i] : keep.back().entries()) out.push_back({vae_to_ldm(n, 2), i->dtype, i->shape, i->data});
  keep.push_back(open_component_weights(test::tiny_model() + "/text_encoder", "text_encoder"));
  const WeightStore& te = keep.back();
  const std::string P = "cond_stage_model.model.";
  auto put = [&](const std::string& name, const std::string& src) {
    const TensorInfo* i = te.find(src);
    ASSERT_NE(i, nullptr) << src;
    out.push_back({name, i->dtype, i->shape, i->data});
  };
  put(P + "token_embedding.weight", "text_model.embeddings.token_embedding.weight");
  put(P + "positional_embedding", "text_model.embeddings.position_embedding.weight");
  put(P + "ln_final.weight", "text_model.final_layer_norm.weight");
  put(P + "ln_final.bias", "text_model.final_layer_norm.bias");
  // 5 real layers + 1 extra that SD2 skips (it uses the penultimate layer).
  for (int l = 0; l < 6; ++l) {
    const int s = std::min(l, 4);
    const std::string r = P + "transformer.resblocks." + std::to_string(l) + ".";
    const std::string d = "text_model.encoder.layers." + std::to_string(s) + ".";
    put(r + "ln_1.weight", d + "layer_norm1.weight");
    put(r + "ln_1.bias", d + "layer_norm1.bias");
    put(r + "ln_2.weight", d + "layer_norm2.weight");
    put(r + "ln_2.bias", d + "layer_norm2.bias");
    put(r + "mlp.c_fc.weight", d + "mlp.fc1.weight");
    put(r + "mlp.c_fc.bias", d + "mlp.fc1.bias");
    put(r + "mlp.c_proj.weight", d + "mlp.fc2.weight");
    put(r + "mlp.c_proj.bias", d + "mlp.fc2.bias");
    put(r + "attn.out_proj.weight", d + "self_attn.out_proj.weight");
    put(r + "attn.out_proj.bias", d + "self_attn.out_proj.bias");
    for (const char* kind : {"weight", "bias"}) {
      std::vector<float> fused;
      for (const char* p : {"q", "k", "v"}) {
        Tensor t = te.get(d + "self_attn." + p + "_proj." + kind);
        fused.insert(fused.end(), t.data(), t.data() + t.numel());
      }
      owned.push_back(std::move(fused));
      Shape sh = std::string(kind) == "weight" ? Shape{96, 32} : Shape{96};
      out.push_back({r + "attn.in_proj_" + kind, DType::kF32, sh, owned.back().data()});
    }
  }
  const std::string file = root + "/sd2tiny.safetensors";
  write_safetensors(file, out, {{"visiongen.text_heads", "4"}, {"visiongen.unet_heads.0", "8"},
                                {"visiongen.unet_heads.1", "8"}, {"visiongen.unet_sample_size", "32"}});
  LoadOptions lo;
  lo.tokenizer_dir = test::tiny_model() + "/tokenizer";  // CLIP-L tokenizer: the loader switches padding to "!"
  auto single = Engine::load(file, lo);
  ASSERT_TRUE(single) << single.error().to_string();
  EXPECT_EQ((*single)->info().family, "sd2");
  auto twin = Engine::load(folder);
  ASSERT_TRUE(twin) << twin.error().to_string();
  GenerateParams p;
  p.prompt = "a red fox";
  p.steps = 3;
  p.seed = 11;
  auto a = (*single)->generate(p);
  auto b = (*twin)->generate(p);
  ASSERT_TRUE(a) << a.error().to_string();
  ASSERT_TRUE(b) << b.error().to_string();
  EXPECT_EQ(a->images[0].width, 64);
  EXPECT_EQ(a->images[0].pixels, b->images[0].pixels);
  // No tokenizer anywhere: the built-in CLIP vocabulary with SD2's "!" padding
  // gives the same image, also for a prompt with "!" in it.
  auto builtin = Engine::load(file, LoadOptions{});
  ASSERT_TRUE(builtin) << builtin.error().to_string();
  for (const char* prompt : {"a red fox", "a red fox!! jumping!"}) {
    p.prompt = prompt;
    auto c = (*builtin)->generate(p);
    auto d = (*twin)->generate(p);
    ASSERT_TRUE(c && d);
    EXPECT_EQ(c->images[0].pixels, d->images[0].pixels) << prompt;
  }
  fs::remove_all(root);
}

}  // namespace
}  // namespace vg
