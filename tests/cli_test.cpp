// Runs the real `visiongen` binary.
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "io/atomic_file.h"
#include "io/image_io.h"
#include "test_util.h"

namespace vg {
namespace {

namespace fs = std::filesystem;

test::CliResult run(const std::string& args) { return test::run_cli(args); }

std::string tmpdir() {
  fs::path d = fs::path(testing::TempDir()) / "vg_cli";
  fs::create_directories(d);
  return d.string();
}

TEST(Cli, GenerateReproducesReferencePngFromSeed) {
  const std::string out = tmpdir() + "/seed42.png";
  auto r = run("generate -m " + test::tiny_model() +
               " -p 'a photograph of an astronaut riding a horse' --steps 4 --cfg-scale 7.5 --seed 42 -W 64 -H 64 -o " + out);
  ASSERT_EQ(r.code, 0) << r.out;
  // In a pipe it stays quiet apart from the output path line.
  EXPECT_EQ(r.out.find("denoise"), std::string::npos) << r.out;
  std::string bytes = read_file(out);
  Image mine = decode_png(bytes, out);
  Image ref = decode_png(read_file(test::tiny() + "/txt2img/extra/euler_pipeline_drawn_noise_seed42_steps4_cfg7p5.png"), "ref");
  ASSERT_EQ(mine.pixels.size(), ref.pixels.size());
  size_t ok = 0;
  for (size_t i = 0; i < ref.pixels.size(); ++i) ok += std::abs(int(mine.pixels[i]) - int(ref.pixels[i])) <= 1;
  EXPECT_GE(static_cast<double>(ok) / ref.pixels.size(), 0.99);
  std::string params = read_png_parameters(bytes);
  EXPECT_EQ(params.rfind("a photograph of an astronaut riding a horse\nSteps: 4, Sampler: euler, CFG scale: 7.5, Seed: 42, Size: 64x64", 0), 0u) << params;
  EXPECT_NE(params.find("Model hash: "), std::string::npos);
  EXPECT_NE(params.find("Model: sd1-tiny"), std::string::npos);
}

TEST(Cli, NegativePromptIsRecordedAndProgressShownWhenAsked) {
  const std::string out = tmpdir() + "/neg.png";
  auto r = run("generate -m " + test::tiny_model() + " -p cat -n 'blurry, low quality' --steps 2 --seed 1 -W 64 -H 64 --progress -o " + out);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("denoise 2/2"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("t_text_encode="), std::string::npos) << r.out;
  EXPECT_NE(read_png_parameters(read_file(out)).find("\nNegative prompt: blurry, low quality\n"), std::string::npos);
}

TEST(Cli, JpegAndWebpOutputs) {
  for (const char* ext : {".jpg", ".webp"}) {
    const std::string out = tmpdir() + "/img" + ext;
    auto r = run("generate -m " + test::tiny_model() + " -p cat --steps 1 --seed 1 -W 64 -H 64 -o " + out);
    ASSERT_EQ(r.code, 0) << r.out;
    std::string b = read_file(out);
    if (std::string(ext) == ".jpg") EXPECT_EQ(b.substr(0, 2), std::string("\xFF\xD8"));
    else EXPECT_EQ(b.substr(8, 4), "WEBP");
  }
}

TEST(Cli, BadInputsExitWithCodeAndNoFile) {
  const std::string out = tmpdir() + "/bad.png";
  fs::remove(out);
  auto r = run("generate -m " + test::tiny_model() + " -p cat --steps 0 -o " + out);
  EXPECT_EQ(r.code, 11) << r.out;
  EXPECT_NE(r.out.find("error [invalid_argument]: steps"), std::string::npos) << r.out;
  r = run("generate -m " + test::tiny_model() + " -p cat -W 66 -H 64 -o " + out);
  EXPECT_EQ(r.code, 11) << r.out;
  r = run("generate -m /nonexistent -p cat -o " + out);
  EXPECT_EQ(r.code, 12) << r.out;
  r = run("generate -m " + test::tiny_model() + " -p cat --steps 1 -W 64 -H 64 -o " + tmpdir() + "/missing/dir/x.png");
  EXPECT_EQ(r.code, 19) << r.out;
  EXPECT_FALSE(fs::exists(out));
  EXPECT_FALSE(fs::exists(tmpdir() + "/missing"));
  r = run("generate -o " + out);  // no prompt: a usage error, no file
  EXPECT_NE(r.code, 0);
  EXPECT_FALSE(fs::exists(out));
}

TEST(Cli, InpaintAndSamplerFlags) {
  const std::string out = tmpdir() + "/inpaint.png";
  const std::string img = test::tiny() + "/inputs/test_image_64.png", mask = test::tiny() + "/inputs/test_mask_64.png";
  auto r = run("generate -m " + test::tiny_model() + " -p cat --steps 4 -i " + img + " --mask " + mask +
               " --strength 0.6 --mask-blur 2 --sampler 'DPM++ 2M Karras' --eta 0.5 --seed 1 -o " + out);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("warning: sampler 'dpmpp_2m' has no eta"), std::string::npos) << r.out;
  std::string params = read_png_parameters(read_file(out));
  EXPECT_NE(params.find("Sampler: DPM++ 2M Karras"), std::string::npos) << params;
  EXPECT_NE(params.find("Denoising strength: 0.6"), std::string::npos) << params;
  EXPECT_NE(params.find("Mask blur: 2"), std::string::npos) << params;
  fs::remove(out);
  r = run("generate -m " + test::tiny_model() + " -p cat -i " + img + " --strength 1.5 -o " + out);
  EXPECT_EQ(r.code, 11) << r.out;
  EXPECT_NE(r.out.find("strength"), std::string::npos) << r.out;
  r = run("generate -m " + test::tiny_model() + " -p cat -i " + test::tiny_model() + "/model_index.json -o " + out);
  EXPECT_EQ(r.code, 14) << r.out;  // unsupported_format: not an image
  r = run("generate -m " + test::tiny_model() + " -p cat --sampler nope -o " + out);
  EXPECT_EQ(r.code, 11) << r.out;
  EXPECT_FALSE(fs::exists(out));
  r = run("samplers");
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("DPM++ 2M SDE"), std::string::npos);
  EXPECT_NE(r.out.find("sgm_uniform"), std::string::npos);
}

TEST(Cli, ConvertWritesLdmCheckpoint) {
  const std::string out = tmpdir() + "/tiny.safetensors";
  auto r = run("convert " + test::tiny_model() + " " + out);
  ASSERT_EQ(r.code, 0) << r.out;
  auto f = SafetensorsFile::open(out);
  EXPECT_TRUE(f->has("model.diffusion_model.middle_block.1.proj_in.weight"));
  EXPECT_TRUE(f->has("first_stage_model.encoder.mid.attn_1.q.weight"));
  EXPECT_EQ(f->info("first_stage_model.encoder.mid.attn_1.q.weight").shape.size(), 4u);
  const std::string img = tmpdir() + "/ldm.png";
  r = run("generate -m " + out + " --tokenizer " + test::tiny_model() + "/tokenizer -p cat --steps 2 --seed 3 -W 64 -H 64 -o " + img);
  ASSERT_EQ(r.code, 0) << r.out;
  // No tokenizer folder anywhere (none beside the file, no VG_TOKENIZER_DIR, an
  // empty HF cache): the built-in CLIP vocabulary gives the same ids, so the same image.
  const char* saved_dir = std::getenv("VG_TOKENIZER_DIR");
  const std::string saved = saved_dir ? saved_dir : "";
  const char* saved_cache_env = std::getenv("HF_HUB_CACHE");
  const std::string saved_cache = saved_cache_env ? saved_cache_env : "";
  unsetenv("VG_TOKENIZER_DIR");
  setenv("HF_HUB_CACHE", (tmpdir() + "/empty_hf_cache").c_str(), 1);
  const std::string img2 = tmpdir() + "/ldm_builtin_tokenizer.png";
  r = run("generate -m " + out + " -p cat --steps 2 --seed 3 -W 64 -H 64 -o " + img2);
  if (saved_dir) setenv("VG_TOKENIZER_DIR", saved.c_str(), 1);
  if (saved_cache_env) setenv("HF_HUB_CACHE", saved_cache.c_str(), 1);
  else unsetenv("HF_HUB_CACHE");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(decode_png(read_file(img2), img2).pixels, decode_png(read_file(img), img).pixels);
}

TEST(Cli, BenchQuickReportsRatioToSgemm) {
  auto r = run("bench --quick --json -m " + test::tiny_model());
  ASSERT_EQ(r.code, 0) << r.out;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_GT(j["sgemm_gflops"].get<double>(), 0);
  ASSERT_GE(j["runs"].size(), 1u);
  EXPECT_EQ(j["runs"][0]["precision"], "fp32");
  EXPECT_GT(j["runs"][0]["sizes"][0]["unet_frac_of_sgemm"].get<double>(), 0);
  EXPECT_GT(j["peak_rss_gb"].get<double>(), 0);
  if (j["runs"].size() == 2) {  // CPUs with AVX-512 also time bf16 and report the speed-up
    EXPECT_EQ(j["runs"][1]["precision"], "bf16");
    EXPECT_GT(j["bf16_speedup"][0].get<double>(), 0);
  }
  ASSERT_EQ(j["model_load"].size(), j["runs"].size());  // load time of the real model, per precision
  EXPECT_GT(j["model_load"][0]["load_s"].get<double>(), 0);
  EXPECT_EQ(run("bench --quick -m " + tmpdir() + "/no-such-model").code, 12);  // file_not_found, before any work
}

TEST(Cli, BenchLoraRankTimesMergeAndUnmerge) {
  // tiny SDXL widths: a rank-4 LoRA over every attention/proj/ff linear
  auto r = run("bench --quick --json --arch sdxl --precision fp32 --lora-rank 4");
  ASSERT_EQ(r.code, 0) << r.out;
  auto j = nlohmann::json::parse(r.out);
  const auto& l = j["runs"][0]["sizes"][0]["lora"];
  ASSERT_TRUE(l.is_object()) << r.out;
  EXPECT_EQ(l["rank"], 4);
  EXPECT_EQ(l["patched_layers"].get<int>(), l["layers"].get<int>());  // every LoRA layer found its slot
  EXPECT_GT(l["layers"].get<int>(), 10);
  EXPECT_TRUE(l["warnings"].empty()) << l["warnings"];
  EXPECT_GT(l["merge_s"].get<double>(), 0);
  EXPECT_TRUE(l["lora_changed_output"].get<bool>());
  EXPECT_TRUE(l["unmerge_restores_bitexact"].get<bool>());  // the synthetic source regenerates the same values
  auto plain = nlohmann::json::parse(run("bench --quick --json --arch sdxl --precision fp32").out);
  EXPECT_FALSE(plain["runs"][0]["sizes"][0].contains("lora"));
}

}  // namespace
}  // namespace vg

namespace vg {
namespace {

TEST(Cli, ScriptedReplGeneratesAndReportsErrors) {
  const std::string dir = tmpdir() + "/repl";
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string script = dir + "/script.txt";
  write_file_atomic(script, "/set steps 2\n/set steps 0\n/set width 64\n/set height 64\n/t2i \"a cat\"\n"
                            "/i2i --image " + test::tiny() + "/inputs/test_image_64.png \"a dog\"\n/backend cuda\n/nope\n/history\n");
  const std::string cmd = "cd " + dir + " && " + std::string(VG_CLI_PATH) + " repl -m " + test::tiny_model() + " < " + script + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  EXPECT_EQ(pclose(p), 0) << out;
  EXPECT_NE(out.find("loaded sd1-tiny"), std::string::npos) << out;
  EXPECT_NE(out.find("error [invalid_argument]: steps must be between 1 and 1000"), std::string::npos) << out;
  EXPECT_NE(out.find("saved repl-1.png"), std::string::npos) << out;
  EXPECT_NE(out.find("saved repl-2.png"), std::string::npos) << out;
  EXPECT_NE(out.find("error [capability_not_supported]"), std::string::npos) << out;
  EXPECT_NE(out.find("unknown command '/nope'"), std::string::npos) << out;
  EXPECT_NE(out.find("  9  /history"), std::string::npos) << out;
  Image img = decode_png(read_file(dir + "/repl-1.png"), "repl");
  EXPECT_EQ(img.width, 64);
  EXPECT_NE(read_png_parameters(read_file(dir + "/repl-1.png")).find("Steps: 2"), std::string::npos);
}

}  // namespace
}  // namespace vg

namespace vg {
namespace {

TEST(Cli, JsonLogLineParses) {
  const std::string out = tmpdir() + "/log.png";
  auto r = run("generate -m " + test::tiny_model() + " -p cat --steps 2 --log-format json -o " + out);
  ASSERT_EQ(r.code, 0) << r.out;
  const size_t brace = r.out.find("{\"applied_preset_patch\"");
  ASSERT_NE(brace, std::string::npos) << r.out;
  auto j = nlohmann::json::parse(r.out.substr(brace, r.out.find('\n', brace) - brace));
  EXPECT_EQ(j["event"], "generate");
  EXPECT_EQ(j["steps"], 2);
  EXPECT_GT(j["peak_rss_mb"].get<double>(), 1.0);
  EXPECT_TRUE(j["applied_preset_patch"].is_object());
}

}  // namespace
}  // namespace vg

namespace vg {
namespace {

// `visiongen system` reports what the thread default is based on: physical
// cores this process may run on (the affinity mask), at least one.
TEST(Cli, SystemReportsCpuFeaturesAndPhysicalCores) {
  auto r = test::run_cli("system --json");
  ASSERT_EQ(r.code, 0) << r.out;
  auto j = nlohmann::json::parse(r.out);
  const auto cores = j["cpu"]["physical_cores_allowed"].get<int>();
  EXPECT_GE(cores, 1);
  EXPECT_LE(cores, j["cpu"]["threads"].get<int>());
  EXPECT_TRUE(j["cpu"]["avx2"].is_boolean());
  auto text = test::run_cli("system");
  EXPECT_NE(text.out.find("physical cores"), std::string::npos) << text.out;
}

}  // namespace
}  // namespace vg
