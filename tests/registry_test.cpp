// The capability registry, offline Hub references and the contract's error
// codes through the API and the CLI.
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>

#include "core/error.h"
#include "io/atomic_file.h"
#include "io/hf_cache.h"
#include "io/image_decode.h"
#include "registry/registry.h"
#include "test_util.h"
#include "visiongen/visiongen.h"

namespace vg {
namespace {

namespace fs = std::filesystem;

using test::run_cli;

TEST(Registry, ShippedRegistryValidatesAndKnowsWhatRuns) {
  auto r = Registry::from_json(nlohmann::json::parse(builtin_registry_json()), "built-in");
  EXPECT_EQ(r.models().size(), 57u);
  auto sd15 = r.find("stable-diffusion-v1-5/stable-diffusion-v1-5");
  ASSERT_TRUE(sd15);
  EXPECT_EQ(sd15->id, "sd15");
  EXPECT_TRUE(sd15->runnable());
  EXPECT_EQ(sd15->limits["size_multiple"], 8);
  auto wan = r.find("wan21_t2v_1_3b");
  ASSERT_TRUE(wan);
  EXPECT_TRUE(wan->has_task("text_to_video"));
  EXPECT_FALSE(wan->runnable());
  EXPECT_EQ(wan->defaults["frames_rule"], "4k+1");
}

TEST(Registry, UserFileErrorsNameFileEntryAndField) {
  auto r = Registry::from_json(nlohmann::json::parse(builtin_registry_json()), "built-in");
  auto expect_error = [&](const nlohmann::json& doc, const std::string& needle) {
    try {
      r.merge(doc, "user.json");
      ADD_FAILURE() << "accepted " << doc.dump();
    } catch (const VgException& e) {
      EXPECT_EQ(e.code(), ErrorCode::kCorruptFile);
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error({{"schema_version", 2}, {"models", nlohmann::json::array()}}, "schema_version");
  expect_error({{"schema_version", 1}, {"models", {{{"id", "mine"}, {"colour", "red"}}}}}, "user.json: entry 'mine': field 'colour'");
  expect_error({{"schema_version", 1}, {"models", {{{"id", "mine"}, {"tasks", {"dance"}}}}}}, "field 'tasks' has unknown task 'dance'");
  expect_error({{"schema_version", 1}, {"models", {{{"id", "mine"}, {"limits", {{"size_multiple", -8}}}}}}}, "limits.size_multiple");
  expect_error({{"schema_version", 1}, {"models", {{{"name", "no id"}}}}}, "models[0]: field 'id' is required");
  // a valid user entry overrides a built-in one and adds a new one
  r.merge({{"schema_version", 1},
           {"models", {{{"id", "sd15"}, {"name", "my SD"}, {"tasks", {"text_to_image"}}},
                       {{"id", "my-model"}, {"ids", {"me/my-model"}}, {"engine", "cpu"}, {"tasks", {"text_to_image"}}}}}},
          "user.json");
  EXPECT_EQ(r.find("sd15")->name, "my SD");
  EXPECT_TRUE(r.find("me/my-model")->runnable());
}

TEST(Registry, CliListsVideoFamiliesAsNotRunnable) {
  auto r = run_cli("models --task text_to_video");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("wan21_t2v_1_3b"), std::string::npos);
  EXPECT_NE(r.out.find("hunyuan_video"), std::string::npos);
  EXPECT_EQ(r.out.find("yes (cpu)"), std::string::npos) << r.out;
  r = run_cli("models --runnable --json");
  auto j = nlohmann::json::parse(r.out);
  for (const auto& m : j) EXPECT_TRUE(m["runnable"].get<bool>());
  EXPECT_GE(j.size(), 3u);
  r = run_cli("models show nope");
  EXPECT_EQ(r.code, 10 + static_cast<int>(ErrorCode::kUnknownModel)) << r.out;
  r = run_cli("engines --json");
  EXPECT_EQ(nlohmann::json::parse(r.out)[0]["mask"], true);
  const std::string bad = testing::TempDir() + "/bad_registry.json";
  write_file_atomic(bad, R"({"schema_version":1,"models":[{"id":"x","tasks":"text_to_image"}]})");
  r = run_cli("models");  // without the variable: fine
  EXPECT_EQ(r.code, 0);
  r = run_cli("models");
  setenv("VG_REGISTRY_FILE", bad.c_str(), 1);
  r = run_cli("models");
  unsetenv("VG_REGISTRY_FILE");
  EXPECT_EQ(r.code, 13) << r.out;  // corrupt_file
  EXPECT_NE(r.out.find("entry 'x': field 'tasks'"), std::string::npos) << r.out;
}

TEST(Contract, ErrorCodesThroughTheCli) {
  auto r = run_cli("generate -p x --task text_to_video");
  EXPECT_EQ(r.code, 10 + static_cast<int>(ErrorCode::kCapabilityNotSupported)) << r.out;
  EXPECT_NE(r.out.find("error [capability_not_supported]: task text_to_video"), std::string::npos) << r.out;
  r = run_cli("generate -m " + test::tiny_model() + " -p x --lora detail:0.8");
  EXPECT_EQ(r.code, 10 + static_cast<int>(ErrorCode::kLoraNotFound)) << r.out;
  EXPECT_NE(r.out.find("error [lora_not_found]: LoRA 'detail'"), std::string::npos) << r.out;
  r = run_cli("generate -m someorg/not-cached-model -p x");
  EXPECT_EQ(r.code, 10 + static_cast<int>(ErrorCode::kModelNotAvailableOffline)) << r.out;
  EXPECT_NE(r.out.find("visiongen hf pull model someorg/not-cached-model"), std::string::npos) << r.out;
  r = run_cli("generate -m sd15 -p x");  // a registry id resolves through the cache too
  EXPECT_EQ(r.code, 10 + static_cast<int>(ErrorCode::kModelNotAvailableOffline)) << r.out;
  const std::string gguf = testing::TempDir() + "/m.gguf";
  write_file_atomic(gguf, "GGUF");
  r = run_cli("generate -m " + gguf + " -p x");  // GGUF files are read now: this one is cut short
  EXPECT_EQ(r.code, 10 + static_cast<int>(ErrorCode::kCorruptFile)) << r.out;
  EXPECT_NE(r.out.find("truncated"), std::string::npos) << r.out;
  r = run_cli("generate -m " + test::tiny_model() + " -p x -W 8192 -H 8192");
  EXPECT_EQ(r.code, 11) << r.out;  // above the 4096 limit: invalid_argument
  r = run_cli("generate -m " + test::tiny_model() + " -p x --task inpaint");
  EXPECT_EQ(r.code, 11) << r.out;
}

TEST(Contract, SizeThatCannotFitIsOutOfMemoryWithTheLargestThatFits) {
  setenv("VG_MEMORY_LIMIT_BYTES", "2000000000", 1);  // a 2 GB budget
  auto e = Engine::load(test::tiny_model());
  ASSERT_TRUE(e);
  GenerateParams p;
  p.prompt = "x";
  p.width = p.height = 4096;
  Status st = (*e)->validate(p);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, ErrorCode::kOutOfMemory);
  EXPECT_NE(st.error().message.find("largest square size that fits is"), std::string::npos) << st.error().message;
  p.width = p.height = 256;
  EXPECT_TRUE((*e)->validate(p));
  auto cli = run_cli("generate -m " + test::tiny_model() + " -p x -W 4096 -H 4096 --steps 1 -o " + testing::TempDir() + "/big.png");
  unsetenv("VG_MEMORY_LIMIT_BYTES");
  EXPECT_EQ(cli.code, 18) << cli.out;
  EXPECT_NE(cli.out.find("error [out_of_memory]"), std::string::npos) << cli.out;
  EXPECT_FALSE(fs::exists(testing::TempDir() + "/big.png"));
}

// A Hub snapshot laid out as the official client does: blobs, relative
// symlinks in snapshots/<commit>, refs/main without a newline.
TEST(HfCache, OfflineReferenceResolvesFromTheCache) {
  const fs::path cache = fs::path(testing::TempDir()) / "vg_hf_cache";
  fs::remove_all(cache);
  const std::string commit = "0123456789abcdef0123456789abcdef01234567";
  const fs::path repo = cache / "models--tiny-org--sd1-tiny";
  fs::create_directories(repo / "refs");
  fs::create_directories(repo / "blobs");
  write_file_atomic((repo / "refs" / "main").string(), commit);
  const fs::path snap = repo / "snapshots" / commit;
  int n = 0;
  for (const auto& f : fs::recursive_directory_iterator(test::tiny_model())) {
    if (!f.is_regular_file()) continue;
    const fs::path rel = fs::relative(f.path(), test::tiny_model());
    const fs::path blob = repo / "blobs" / ("blob" + std::to_string(n++));
    fs::copy_file(f.path(), blob);
    fs::create_directories((snap / rel).parent_path());
    fs::create_symlink(fs::relative(blob, (snap / rel).parent_path()), snap / rel);
  }
  setenv("HF_HUB_CACHE", cache.string().c_str(), 1);
  EXPECT_EQ(hf_cached_snapshot("tiny-org/sd1-tiny"), snap.string());
  EXPECT_EQ(hf_cached_snapshot("tiny-org/sd1-tiny@" + commit), snap.string());
  EXPECT_FALSE(hf_cached_snapshot("tiny-org/sd1-tiny@other"));
  auto e = Engine::load("tiny-org/sd1-tiny");
  ASSERT_TRUE(e) << e.error().to_string();
  auto r = run_cli("generate -m tiny-org/sd1-tiny -p 'a cat' --steps 2 -o " + (cache / "out.png").string());
  unsetenv("HF_HUB_CACHE");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_TRUE(fs::exists(cache / "out.png"));
  fs::remove_all(cache);
}

}  // namespace
}  // namespace vg

#include "registry/presets.h"

namespace vg {
namespace {

TEST(Presets, FillOnlyAndThePatchListsExactlyTheFilledFields) {
  GenerateParams p;
  p.steps = 7;  // set by the user
  auto r = apply_preset("stable-diffusion-1-x", "lcm", "text_to_image", {"steps"}, &p);
  EXPECT_EQ(p.steps, 7);
  EXPECT_EQ(p.sampler, "lcm");
  EXPECT_FLOAT_EQ(p.cfg_scale, 1.0f);
  EXPECT_EQ(r.applied_patch, (nlohmann::json{{"cfg_scale", 1.0}, {"sampler", "lcm"}}));
  EXPECT_TRUE(r.mode_ignored_reason.empty());
  GenerateParams q;
  q.sampler = "ddim";
  auto all_set = apply_preset("stable-diffusion-1-x", "lcm", "text_to_image", {"steps", "cfg_scale", "sampler"}, &q);
  EXPECT_EQ(q.sampler, "ddim");
  EXPECT_TRUE(all_set.applied_patch.empty());
  GenerateParams t;
  auto ign = apply_preset("stable-diffusion-1-x", "turbo", "text_to_image", {}, &t);  // turbo is SD2 only here
  EXPECT_NE(ign.mode_ignored_reason.find("mode ignored"), std::string::npos);
  EXPECT_TRUE(ign.applied_patch.empty());
  EXPECT_THROW(apply_preset("stable-diffusion-1-x", "warp", "text_to_image", {}, &t), VgException);
}

TEST(Presets, UserDirectoryOverridesBuiltins) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::path(testing::TempDir()) / "vg_presets";
  fs::create_directories(dir);
  write_file_atomic((dir / "sd1-lcm.yaml").string(), "family: stable-diffusion-1-x\nmode: lcm\ntask: '*'\nfill:\n  steps: 6\n");
  setenv("VG_PRESET_DIR", dir.string().c_str(), 1);
  GenerateParams p;
  auto r = apply_preset("stable-diffusion-1-x", "lcm", "text_to_image", {}, &p);
  write_file_atomic((dir / "broken.yaml").string(), "family: x\nmode: normal\ncolour: red\nfill: {}\n");
  GenerateParams q;
  EXPECT_THROW(apply_preset("x", "normal", "text_to_image", {}, &q), VgException);
  unsetenv("VG_PRESET_DIR");
  EXPECT_EQ(p.steps, 6);
  EXPECT_EQ(r.applied_patch, (nlohmann::json{{"steps", 6}}));
  fs::remove_all(dir);
}

TEST(Presets, EngineReportsTheAppliedPatch) {
  auto e = Engine::load(test::tiny_model());
  ASSERT_TRUE(e);
  GenerateParams p;
  p.prompt = "x";
  p.width = p.height = 64;
  p.mode = "lcm";
  p.steps = 2;
  p.set_fields = {"prompt", "width", "height", "mode", "steps"};
  auto r = (*e)->generate(p);
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(nlohmann::json::parse(r->applied_preset_patch), (nlohmann::json{{"cfg_scale", 1.0}, {"sampler", "lcm"}}));
  EXPECT_EQ(r->sampling.sampler_effective, "lcm");
  EXPECT_NE(r->infotext[0].find("Steps: 2, Sampler: lcm"), std::string::npos) << r->infotext[0];
}

}  // namespace
}  // namespace vg

#include "visiongen/manager.h"

namespace vg {
namespace {

TEST(VisionManager, RunsKnownTasksAndRejectsTheOthers) {
  VisionManager vm;
  TaskRequest r;
  r.model = test::tiny_model();
  r.params.prompt = "a cat";
  r.params.steps = 2;
  r.params.width = r.params.height = 64;
  r.task = "upscale";
  auto up = vm.run(r);
  ASSERT_FALSE(up);
  EXPECT_EQ(up.error().code, ErrorCode::kCapabilityNotSupported);
  EXPECT_TRUE(vm.loaded().empty());  // rejected before loading anything
  // video limits are checked before loading too: frames above the engine's, sizes not multiples of 16
  r.task = "text_to_video";
  r.params.frames = 2001;
  EXPECT_EQ(vm.validate(r).error().code, ErrorCode::kInvalidArgument);
  r.params.frames = 5;
  r.params.width = 72;
  EXPECT_EQ(vm.validate(r).error().code, ErrorCode::kInvalidArgument);
  r.task = "image_to_video";
  r.params.width = 64;
  EXPECT_EQ(vm.validate(r).error().code, ErrorCode::kInvalidArgument);  // no first frame
  EXPECT_TRUE(vm.loaded().empty());
  // a video task on an image model is refused by the model's engine, naming the family
  r.task = "text_to_video";
  auto v = vm.run(r);
  ASSERT_FALSE(v);
  EXPECT_EQ(v.error().code, ErrorCode::kCapabilityNotSupported);
  EXPECT_NE(v.error().message.find("needs a video model"), std::string::npos) << v.error().message;
  r.params.frames = 0;
  r.task = "text_to_image";
  r.device = "cuda";
  EXPECT_EQ(vm.validate(r).error().code, ErrorCode::kCapabilityNotSupported);
  r.device = "tpu";
  EXPECT_EQ(vm.validate(r).error().code, ErrorCode::kInvalidArgument);
  r.device = "auto";
  r.model = "no-such-org/no-such-model";
  EXPECT_EQ(vm.run(r).error().code, ErrorCode::kModelNotAvailableOffline);
  r.model = test::tiny_model();
  auto res = vm.run(r);
  ASSERT_TRUE(res) << res.error().to_string();
  EXPECT_EQ(res->images[0].width, 64);
  r.task = "image_to_image";
  Image init = read_image_file(test::tiny() + "/inputs/test_image_64.png");
  Image mask = read_image_file(test::tiny() + "/inputs/test_mask_64.png");
  r.images.init_image = &init;
  r.images.mask = &mask;
  res = vm.run(r);
  ASSERT_TRUE(res) << res.error().to_string();
  EXPECT_NE(res->infotext[0].find("Mask blur"), std::string::npos);
}

TEST(VisionManager, EngineWithoutMaskSupportRejectsMasksBeforeLoading) {
  ManagerOptions o;
  EngineCapabilities plain = builtin_engines().at(0);
  plain.name = "cpu-nomask";
  plain.mask = false;
  plain.lora = false;
  plain.tasks = {"text_to_image", "image_to_image"};
  plain.max_size = 128;
  o.engines = {plain};
  VisionManager vm(o);
  ASSERT_EQ(vm.engines().size(), 1u);
  EXPECT_FALSE(vm.engines()[0].mask);
  TaskRequest r;
  r.task = "image_to_image";
  r.model = test::tiny_model();
  r.params.prompt = "a cat";
  r.params.steps = 2;
  r.params.width = r.params.height = 64;
  Image init = read_image_file(test::tiny() + "/inputs/test_image_64.png");
  Image mask = read_image_file(test::tiny() + "/inputs/test_mask_64.png");
  r.images.init_image = &init;
  r.images.mask = &mask;
  auto res = vm.run(r);
  ASSERT_FALSE(res);
  EXPECT_EQ(res.error().code, ErrorCode::kCapabilityNotSupported);
  EXPECT_NE(res.error().message.find("cpu-nomask"), std::string::npos) << res.error().message;
  EXPECT_NE(res.error().message.find("mask"), std::string::npos);
  EXPECT_TRUE(vm.loaded().empty());  // nothing heavy was done
  r.images.mask = nullptr;  // the same request without the mask runs
  EXPECT_TRUE(vm.validate(r)) << vm.validate(r).error().to_string();
  r.params.width = 256;  // above this engine's limit
  auto big = vm.validate(r);
  ASSERT_FALSE(big);
  EXPECT_EQ(big.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(big.error().message.find("128"), std::string::npos);
  r.params.width = 64;
  r.params.loras = "style:0.8";
  EXPECT_EQ(vm.validate(r).error().code, ErrorCode::kLoraUnsupported);
  // The built-in engine takes masks.
  VisionManager full;
  r.params.loras.clear();
  r.images.mask = &mask;
  EXPECT_TRUE(full.validate(r));
}

TEST(VisionManager, MemoryBudgetUnloadsTheLeastRecentlyUsed) {
  ManagerOptions o;
  o.memory_budget_bytes = 40e6;  // one tiny model (~30 MB in float32) fits, two do not
  VisionManager vm(o);
  const std::string a = test::tiny_model(), b = test::tiny() + "/models/sd1-tiny-inpaint";
  ASSERT_TRUE(vm.load(a));
  EXPECT_EQ(vm.loaded(), std::vector<std::string>{a});
  ASSERT_TRUE(vm.load(b));
  EXPECT_EQ(vm.loaded(), std::vector<std::string>{b});
  EXPECT_LE(vm.memory_in_use(), o.memory_budget_bytes);
  ManagerOptions tiny_budget;
  tiny_budget.memory_budget_bytes = 1e6;
  VisionManager small(tiny_budget);
  EXPECT_EQ(small.load(a).error().code, ErrorCode::kOutOfMemory);
}

}  // namespace
}  // namespace vg

#include <openssl/sha.h>

#include "io/hf_cache_tools.h"

namespace vg {
namespace {

std::string hexs(const unsigned char* d, size_t n) {
  static const char* k = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < n; ++i) s += k[d[i] >> 4], s += k[d[i] & 15];
  return s;
}

// Blob names as the official client uses them: sha256 for LFS files (the
// etag), git's blob sha1 for small text files.
std::string blob_name(const std::string& path, const std::string& data) {
  if (path.size() > 12 && path.substr(path.size() - 12) == ".safetensors") {
    unsigned char d[SHA256_DIGEST_LENGTH];
    SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), d);
    return hexs(d, sizeof d);
  }
  const std::string obj = "blob " + std::to_string(data.size()) + std::string(1, '\0') + data;
  unsigned char d[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(obj.data()), obj.size(), d);
  return hexs(d, sizeof d);
}

TEST(HfCache, CacheCommandsListVerifyRemoveAndPrune) {
  const fs::path cache = fs::path(testing::TempDir()) / "vg_hf_cache_cmds";
  fs::remove_all(cache);
  const std::string commit = "89abcdef0123456789abcdef0123456789abcdef";
  for (const char* repo : {"models--org-a--tiny", "models--org-b--tiny"}) {
    const fs::path r = cache / repo;
    fs::create_directories(r / "refs");
    fs::create_directories(r / "blobs");
    write_file_atomic((r / "refs" / "main").string(), commit);
    for (const auto& f : fs::recursive_directory_iterator(test::tiny_model())) {
      if (!f.is_regular_file()) continue;
      const std::string data = read_file(f.path().string());
      const fs::path rel = fs::relative(f.path(), test::tiny_model());
      const fs::path blob = r / "blobs" / blob_name(f.path().string(), data);
      if (!fs::exists(blob)) fs::copy_file(f.path(), blob);
      const fs::path link = r / "snapshots" / commit / rel;
      fs::create_directories(link.parent_path());
      fs::create_symlink(fs::relative(blob, link.parent_path()), link);
    }
  }
  setenv("HF_HUB_CACHE", cache.string().c_str(), 1);
  auto r = run_cli("hf cache ls --json");
  auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j.size(), 2u) << r.out;
  EXPECT_EQ(j[0]["id"], "org-a/tiny");
  EXPECT_EQ(j[0]["refs"]["main"], commit);
  EXPECT_GT(j[0]["bytes"].get<uint64_t>(), 10000000u);
  r = run_cli("hf cache verify");
  EXPECT_EQ(r.code, 0) << r.out;
  // corrupt one LFS blob
  for (const auto& b : fs::directory_iterator(cache / "models--org-a--tiny" / "blobs"))
    if (b.path().filename().string().size() == 64) {
      std::string d = read_file(b.path().string());
      d[100] ^= 1;
      fs::remove(b.path());
      write_file_atomic(b.path().string(), d);
      break;
    }
  r = run_cli("hf cache verify");
  EXPECT_EQ(r.code, 13) << r.out;
  EXPECT_NE(r.out.find("CORRUPT"), std::string::npos);
  EXPECT_EQ(run_cli("hf cache rm org-a/tiny").code, 0);
  EXPECT_EQ(run_cli("hf cache rm org-a/tiny").code, 12);
  EXPECT_EQ(run_cli("hf cache verify").code, 0);
  r = run_cli("hf cache prune --max-size 1M");
  EXPECT_NE(r.out.find("removed org-b/tiny"), std::string::npos) << r.out;
  EXPECT_EQ(nlohmann::json::parse(run_cli("hf cache ls --json").out).size(), 0u);
  EXPECT_EQ(run_cli("hf cache prune --max-size lots").code, 11);
  unsetenv("HF_HUB_CACHE");
  fs::remove_all(cache);
}

}  // namespace
}  // namespace vg
