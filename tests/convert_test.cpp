// `visiongen convert` both ways for SDXL (diffusers folder <-> Stability SGM
// single file) and the single file -> folder direction for SD1.
#include <filesystem>

#include "io/safetensors.h"
#include "models/autoencoder_kl.h"
#include "models/unet.h"
#include "pipelines/ldm_checkpoint.h"
#include "test_util.h"
#include "text/clip_text_model.h"
#include "visiongen/visiongen.h"

namespace vg {
namespace {

namespace fs = std::filesystem;

std::string xl_dir() { return test::fixtures() + "/sdxl-tiny/models/sdxl-tiny"; }

GenerateParams small_params() {
  GenerateParams p;
  p.prompt = "a red cube on a table";
  p.negative_prompt = "blurry";
  p.steps = 2;
  p.seed = 11;
  p.width = p.height = 64;
  return p;
}

std::vector<uint8_t> image_of(const std::string& path, const LoadOptions& lo = {}) {
  auto e = Engine::load(path, lo);
  EXPECT_TRUE(e) << e.error().to_string();
  if (!e) return {};
  auto r = (*e)->generate(small_params());
  EXPECT_TRUE(r) << r.error().to_string();
  return r ? r->images[0].pixels : std::vector<uint8_t>{};
}

bool ignorable(const std::string& n) {  // extras real SGM files carry and diffusers never reads
  return n.find("position_ids") != std::string::npos || n.find("logit_scale") != std::string::npos;
}

TEST(ConvertSdxlSlow, FolderToSgmMatchesDiffusersScript) {
  const std::string out = testing::TempDir() + "/xl_conv.safetensors";
  convert_diffusers_to_ldm(xl_dir(), out);
  auto a = SafetensorsFile::open(out);
  auto ref = SafetensorsFile::open(xl_dir() + ".safetensors");
  std::set<std::string> got, want;
  for (auto& [n, i] : a->tensors())
    if (!ignorable(n)) got.insert(n);
  for (auto& [n, i] : ref->tensors())
    if (!ignorable(n)) want.insert(n);
  EXPECT_EQ(got, want);
  int compared = 0;
  for (auto& n : want) {
    if (!got.count(n)) continue;
    EXPECT_EQ(a->info(n).shape, ref->info(n).shape) << n;
    Tensor x = a->load_f32(n), y = ref->load_f32(n);
    ASSERT_EQ(x.numel(), y.numel()) << n;
    EXPECT_EQ(test::max_abs_diff(x.data(), y.data(), x.numel()), 0.0) << n;
    ++compared;
  }
  EXPECT_GT(compared, 1000);
  EXPECT_TRUE(a->metadata().count("visiongen.unet_config"));
  // The converted file loads with no --model-config and gives the folder's image.
  EXPECT_EQ(image_of(out), image_of(xl_dir()));
  fs::remove(out);
}

TEST(ConvertSdxlSlow, SgmFileToFolderGivesTheSameImage) {
  const std::string out = testing::TempDir() + "/xl_folder";
  fs::remove_all(out);
  convert_single_file_to_diffusers(xl_dir() + ".safetensors", out, xl_dir());
  // The written configs parse and describe the same model.
  const UNetConfig u = UNetConfig::from_json_file(out + "/unet/config.json");
  const UNetConfig ru = UNetConfig::from_json_file(xl_dir() + "/unet/config.json");
  EXPECT_EQ(u.block_out_channels, ru.block_out_channels);
  EXPECT_EQ(u.num_heads, ru.num_heads);
  EXPECT_EQ(u.transformer_layers, ru.transformer_layers);
  EXPECT_EQ(u.norm_num_groups, ru.norm_num_groups);
  EXPECT_EQ(VaeConfig::from_json_file(out + "/vae/config.json").norm_num_groups,
            VaeConfig::from_json_file(xl_dir() + "/vae/config.json").norm_num_groups);
  EXPECT_EQ(ClipTextConfig::from_json_file(out + "/text_encoder_2/config.json").projection_dim,
            ClipTextConfig::from_json_file(xl_dir() + "/text_encoder_2/config.json").projection_dim);
  for (const char* f : {"/model_index.json", "/scheduler/scheduler_config.json", "/tokenizer/vocab.json",
                        "/tokenizer_2/merges.txt", "/text_encoder/config.json"})
    EXPECT_TRUE(fs::exists(out + f)) << f;
  // Weights under diffusers names, q/k/v split and the projection transposed back: equal to the folder's.
  auto te2 = SafetensorsFile::open(out + "/text_encoder_2/model.safetensors");
  auto ref2 = SafetensorsFile::open(xl_dir() + "/text_encoder_2/model.safetensors");
  for (const char* n : {"text_projection.weight", "text_model.encoder.layers.0.self_attn.k_proj.weight",
                        "text_model.encoder.layers.1.self_attn.v_proj.bias"}) {
    ASSERT_TRUE(te2->has(n)) << n;
    EXPECT_EQ(te2->info(n).shape, ref2->info(n).shape) << n;
    Tensor x = te2->load_f32(n), y = ref2->load_f32(n);
    EXPECT_EQ(test::max_abs_diff(x.data(), y.data(), x.numel()), 0.0) << n;
  }
  LoadOptions lo;
  lo.config_dir = xl_dir();
  EXPECT_EQ(image_of(out), image_of(xl_dir() + ".safetensors", lo));
  fs::remove_all(out);
}

TEST(ConvertSdxlSlow, RoundTripWithoutConfigFolder) {
  // folder -> file (configs in metadata) -> folder, no --model-config anywhere.
  const std::string file = testing::TempDir() + "/xl_rt.safetensors", out = testing::TempDir() + "/xl_rt";
  fs::remove_all(out);
  convert_diffusers_to_ldm(xl_dir(), file);
  convert_single_file_to_diffusers(file, out);
  EXPECT_EQ(image_of(out), image_of(xl_dir()));
  fs::remove(file);
  fs::remove_all(out);
}

TEST(ConvertSd1, LdmFileToFolderGivesTheSameImage) {
  const std::string file = testing::TempDir() + "/sd1_rt.safetensors", out = testing::TempDir() + "/sd1_rt";
  fs::remove_all(out);
  convert_diffusers_to_ldm(test::tiny_model(), file);
  convert_single_file_to_diffusers(file, out, "", test::tiny_model() + "/tokenizer");
  EXPECT_TRUE(fs::exists(out + "/tokenizer/vocab.json"));
  EXPECT_EQ(image_of(out), image_of(test::tiny_model()));
  fs::remove(file);
  fs::remove_all(out);
}

}  // namespace
}  // namespace vg
