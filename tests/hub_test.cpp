// The Hub client against the emulator: cache layout, resume, retries,
// errors, safety, offline mode, and generating from a pulled model.
#include <filesystem>

#include "core/error.h"
#include "hub/hub.h"
#include "hub_emulator.h"
#include "io/atomic_file.h"
#include "test_util.h"
#include "visiongen/visiongen.h"

namespace vg {
namespace {

namespace fs = std::filesystem;
using test::EmuFile;

struct HubFixture : ::testing::Test {
  test::HubEmulator emu;
  fs::path cache;
  hub::HubConfig cfg;
  void SetUp() override {
    cache = fs::path(testing::TempDir()) / ("vg_hub_" + std::to_string(::getpid()) + "_" +
                                            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(cache);
    cfg.endpoint = emu.endpoint();
    cfg.cache_dir = cache.string();
    cfg.token = emu.good_token;
    test::EmuRepo r{"org/demo", "1111111111111111111111111111111111111111", {}};
    r.files = {{"model_index.json", R"({"_class_name":"StableDiffusionPipeline"})", false},
               {"unet/diffusion_pytorch_model.safetensors", std::string(100000, 'u'), true},
               {"README.md", "# demo\n", false},
               {"pytorch_model.bin", std::string(5000, 'p'), true}};
    emu.repos[r.id] = r;
  }
  void TearDown() override { fs::remove_all(cache); }
};

TEST_F(HubFixture, PullLaysOutTheCacheLikeTheOfficialClient) {
  auto rep = hub::pull_model(cfg, "org/demo", {});
  const fs::path base = cache / "models--org--demo";
  EXPECT_EQ(rep.commit, "1111111111111111111111111111111111111111");
  EXPECT_EQ(read_file((base / "refs" / "main").string()), rep.commit);  // no newline
  ASSERT_EQ(rep.skipped_unsafe, std::vector<std::string>{"pytorch_model.bin"});
  for (const auto& f : emu.repos["org/demo"].files) {
    const fs::path link = base / "snapshots" / rep.commit / f.path;
    if (f.path == "pytorch_model.bin") {
      EXPECT_FALSE(fs::exists(link));
      continue;
    }
    ASSERT_TRUE(fs::is_symlink(link)) << f.path;
    const std::string etag = f.lfs ? test::sha256_of(f.data) : test::git_sha1_of(f.data);
    EXPECT_EQ(fs::read_symlink(link), fs::relative(base / "blobs" / etag, link.parent_path())) << f.path;
    EXPECT_EQ(read_file(link.string()), f.data);
  }
  for (const auto& a : emu.cdn_authorization) EXPECT_TRUE(a.empty()) << "token sent to the CDN";
  // a second pull only asks for metadata
  const int cdn = emu.cdn_requests;
  auto again = hub::pull_model(cfg, "org/demo", {});
  EXPECT_EQ(emu.cdn_requests, cdn);
  EXPECT_EQ(again.bytes_downloaded, 0u);
  for (const auto& f : again.files) EXPECT_FALSE(f.downloaded);
  // unsafe files only on request
  hub::PullOptions o;
  o.allow_unsafe = true;
  o.include = {"*.bin"};
  auto unsafe = hub::pull_model(cfg, "org/demo", o);
  ASSERT_EQ(unsafe.files.size(), 1u);
  EXPECT_TRUE(fs::exists(base / "snapshots" / rep.commit / "pytorch_model.bin"));
}

TEST_F(HubFixture, ResumesAfterACutWithoutRefetchingBytes) {
  emu.cut_after = 30000;
  hub::PullOptions o;
  o.include = {"unet/*"};
  auto rep = hub::pull_model(cfg, "org/demo", o);
  ASSERT_EQ(rep.files.size(), 1u);
  EXPECT_EQ(rep.bytes_downloaded, 100000u);  // 30000 then the remaining 70000 via Range
  EXPECT_EQ(emu.cdn_requests, 2);
}

TEST_F(HubFixture, RetriesHonourRetryAfterAnd5xx) {
  emu.fail_429 = 1;
  emu.fail_500 = 1;
  hub::PullOptions o;
  o.include = {"unet/*"};
  const auto t0 = std::chrono::steady_clock::now();
  auto rep = hub::pull_model(cfg, "org/demo", o);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(rep.files.size(), 1u);
  EXPECT_GE(s, 2.0);  // Retry-After: 1 -> waits 2 s
  EXPECT_EQ(emu.cdn_requests, 3);
}

TEST_F(HubFixture, ErrorsAreMapped) {
  auto code_of = [&](const std::string& repo, hub::HubConfig c, hub::PullOptions o = {}) {
    try {
      hub::pull_model(c, repo, o);
    } catch (const VgException& e) {
      return std::make_pair(e.code(), std::string(e.what()));
    }
    return std::make_pair(ErrorCode::kOk, std::string());
  };
  auto [c1, m1] = code_of("org/missing", cfg);
  EXPECT_EQ(c1, ErrorCode::kFileNotFound);
  EXPECT_NE(m1.find("repository not found"), std::string::npos);
  test::EmuRepo priv{"org/private", "2222222222222222222222222222222222222222", {{"a.json", "{}", false}}, true};
  test::EmuRepo gated{"org/gated", "3333333333333333333333333333333333333333", {{"a.json", "{}", false}}, false, true};
  emu.repos[priv.id] = priv;
  emu.repos[gated.id] = gated;
  hub::HubConfig anon = cfg;
  anon.token.clear();
  EXPECT_EQ(code_of("org/private", anon).first, ErrorCode::kFileNotFound);
  EXPECT_EQ(code_of("org/private", cfg).first, ErrorCode::kOk);
  auto [c2, m2] = code_of("org/gated", anon);
  EXPECT_EQ(c2, ErrorCode::kUnauthorized);
  EXPECT_NE(m2.find("request access"), std::string::npos);
  EXPECT_EQ(code_of("org/gated", cfg).first, ErrorCode::kOk);
  hub::PullOptions bad_rev;
  bad_rev.revision = "nope";
  auto [c3, m3] = code_of("org/demo", cfg, bad_rev);
  EXPECT_EQ(c3, ErrorCode::kFileNotFound);
  EXPECT_NE(m3.find("revision not found"), std::string::npos);
  EXPECT_EQ(code_of("../etc", cfg).first, ErrorCode::kInvalidArgument);
}

TEST_F(HubFixture, OfflineModeMakesNoRequests) {
  hub::HubConfig off = cfg;
  off.offline = true;
  setenv("HF_HUB_CACHE", cache.string().c_str(), 1);
  try {
    hub::pull_model(off, "org/demo", {});
    ADD_FAILURE();
  } catch (const VgException& e) {
    EXPECT_EQ(e.code(), ErrorCode::kModelNotAvailableOffline);
  }
  EXPECT_EQ(emu.api_requests, 0);
  hub::pull_model(cfg, "org/demo", {});
  const int before = emu.api_requests + emu.cdn_requests;
  auto rep = hub::pull_model(off, "org/demo", {});
  unsetenv("HF_HUB_CACHE");
  EXPECT_EQ(emu.api_requests + emu.cdn_requests, before);
  EXPECT_EQ(rep.commit, "1111111111111111111111111111111111111111");
}

TEST_F(HubFixture, PulledModelGeneratesOffline) {
  test::EmuRepo tiny{"tiny-org/sd1-tiny", "4444444444444444444444444444444444444444", {}};
  for (const auto& f : fs::recursive_directory_iterator(test::tiny_model()))
    if (f.is_regular_file())
      tiny.files.push_back({fs::relative(f.path(), test::tiny_model()).string(), read_file(f.path().string()),
                            f.path().extension() == ".safetensors"});
  emu.repos[tiny.id] = tiny;
  setenv("HF_ENDPOINT", emu.endpoint().c_str(), 1);
  setenv("HF_HUB_CACHE", cache.string().c_str(), 1);
  // without --allow-download nothing is fetched
  auto r = test::run_cli("generate -m tiny-org/sd1-tiny -p 'a cat' --steps 2 -o " + (cache / "none.png").string());
  EXPECT_EQ(r.code, 10 + static_cast<int>(ErrorCode::kModelNotAvailableOffline)) << r.out;
  EXPECT_EQ(emu.api_requests, 0);
  r = test::run_cli("generate -m tiny-org/sd1-tiny --allow-download -p 'a cat' --steps 2 -o " + (cache / "dl.png").string());
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_TRUE(fs::exists(cache / "dl.png"));
  r = test::run_cli("hf pull model tiny-org/sd1-tiny --json");
  ASSERT_EQ(r.code, 0) << r.out;
  setenv("HF_HUB_OFFLINE", "1", 1);
  r = test::run_cli("generate -m tiny-org/sd1-tiny -p 'a cat' --steps 2 -o " + (cache / "out.png").string());
  unsetenv("HF_HUB_OFFLINE");
  unsetenv("HF_ENDPOINT");
  unsetenv("HF_HUB_CACHE");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_TRUE(fs::exists(cache / "out.png"));
}

}  // namespace
}  // namespace vg

namespace vg {
namespace {

TEST_F(HubFixture, SearchInfoAndDatasetsThroughTheCli) {
  test::EmuRepo ds{"org/pictures", "5555555555555555555555555555555555555555", {{"data/train.parquet", std::string(3000, 'd'), true}}};
  ds.kind = "dataset";
  emu.repos[ds.id] = ds;
  emu.repos["org/demo"].downloads = 10;
  test::EmuRepo other{"org/demo-xl", "6666666666666666666666666666666666666666", {{"a.json", "{}", false}}};
  other.downloads = 99;
  emu.repos[other.id] = other;
  setenv("HF_ENDPOINT", emu.endpoint().c_str(), 1);
  setenv("HF_HUB_CACHE", cache.string().c_str(), 1);
  setenv("HF_TOKEN", emu.good_token.c_str(), 1);
  auto r = test::run_cli("hf search models demo --sort downloads --json");
  ASSERT_EQ(r.code, 0) << r.out;
  auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j.size(), 2u);
  EXPECT_EQ(j[0]["id"], "org/demo-xl");  // most downloads first
  r = test::run_cli("hf search datasets pic --json");
  EXPECT_EQ(nlohmann::json::parse(r.out).size(), 1u) << r.out;
  r = test::run_cli("hf info model org/demo --json");
  ASSERT_EQ(r.code, 0) << r.out;
  j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["license"], "mit");
  size_t total = 0;
  for (const auto& f : emu.repos["org/demo"].files) total += f.data.size();
  EXPECT_EQ(j["total_size"].get<size_t>(), total);
  for (const auto& f : j["files"])
    EXPECT_EQ(f["safety"], f["path"] == "pytorch_model.bin" ? "unsafe" : "safe") << f.dump();
  r = test::run_cli("hf pull dataset org/pictures --json");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_TRUE(fs::exists(cache / "datasets--org--pictures" / "snapshots" / ds.commit / "data" / "train.parquet"));
  EXPECT_EQ(test::run_cli("hf whoami").out, "alice\n");
  setenv("HF_TOKEN", "wrong", 1);
  r = test::run_cli("hf whoami");
  EXPECT_EQ(r.code, 10 + static_cast<int>(ErrorCode::kUnauthorized)) << r.out;
  unsetenv("HF_TOKEN");
  // login writes the token file the official clients read; logout deletes it
  setenv("HF_HOME", (cache / "home").string().c_str(), 1);
  r = test::run_cli("hf login --token " + emu.good_token);
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(read_file((cache / "home" / "token").string()), emu.good_token);
  EXPECT_EQ(test::run_cli("hf whoami").out, "alice\n");
  EXPECT_EQ(test::run_cli("hf logout").code, 0);
  EXPECT_FALSE(fs::exists(cache / "home" / "token"));
  unsetenv("HF_HOME");
  unsetenv("HF_ENDPOINT");
  unsetenv("HF_HUB_CACHE");
}

}  // namespace
}  // namespace vg

namespace vg {
namespace {

TEST_F(HubFixture, ParallelDownloadsWithProgressOnlyOnATerminal) {
  test::EmuRepo big{"org/big", "7777777777777777777777777777777777777777", {}};
  for (int i = 0; i < 3; ++i) big.files.push_back({"part" + std::to_string(i) + ".safetensors", std::string(640 * 1024, static_cast<char>('a' + i)), true});
  emu.repos[big.id] = big;
  emu.slow_ms = 40;  // 10 chunks of 64 KB: about 0.4 s per file
  setenv("HF_ENDPOINT", emu.endpoint().c_str(), 1);
  setenv("HF_HUB_CACHE", cache.string().c_str(), 1);
  // on a pseudo-terminal: progress lines and a total with speed
  const std::string cmd = std::string(VG_CLI_PATH) + " hf pull model org/big";
  FILE* p = popen(("script -qec '" + cmd + "' /dev/null 2>&1").c_str(), "r");
  std::string tty_out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) tty_out.append(buf, n);
  EXPECT_EQ(pclose(p), 0) << tty_out;
  EXPECT_NE(tty_out.find("MB/s"), std::string::npos) << tty_out;
  EXPECT_GE(emu.max_inflight.load(), 2);  // files were fetched in parallel
  // in a pipe: no progress, just the result lines
  fs::remove_all(cache);
  auto r = test::run_cli("hf pull model org/big");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.out.find("MB/s"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("fetched part2.safetensors"), std::string::npos) << r.out;
  // --dry-run lists sizes and fetches nothing
  const int cdn = emu.cdn_requests;
  r = test::run_cli("hf pull model org/big --dry-run --revision main");
  EXPECT_NE(r.out.find("would fetch"), std::string::npos) << r.out;
  EXPECT_EQ(emu.cdn_requests, cdn);
  unsetenv("HF_ENDPOINT");
  unsetenv("HF_HUB_CACHE");
}

}  // namespace
}  // namespace vg

#include "hub/push.h"

namespace vg {
namespace {

TEST_F(HubFixture, PushNewRepoThenOnlyTheChangedFile) {
  const fs::path dir = cache / "upload";
  fs::create_directories(dir / "unet");
  fs::copy_file(test::tiny_model() + "/unet/diffusion_pytorch_model.safetensors", dir / "unet" / "diffusion_pytorch_model.safetensors");
  fs::copy_file(test::tiny_model() + "/model_index.json", dir / "model_index.json");
  write_file_atomic((dir / "notes.txt").string(), "first\n");
  hub::PushOptions po;
  po.repo = "alice/pushed";
  auto rep = hub::push_folder(cfg, dir.string(), po);
  EXPECT_TRUE(rep.model_card_written);
  const std::string card = read_file((dir / "README.md").string());
  EXPECT_EQ(card.rfind("---\nlicense: other\nlibrary_name: diffusers\npipeline_tag: text-to-image\n", 0), 0u) << card;
  EXPECT_NE(card.find("- class: `StableDiffusionPipeline`"), std::string::npos) << card;
  EXPECT_NE(card.find("- unet: `UNet2DConditionModel`"), std::string::npos) << card;
  EXPECT_EQ(emu.commits, 1);
  EXPECT_GE(emu.lfs_puts + emu.part_puts, 1);  // the UNet went through LFS
  // pull it back: same bytes
  hub::PullOptions pl;
  auto back = hub::pull_model(cfg, "alice/pushed", pl);
  EXPECT_EQ(read_file(back.snapshot_dir + "/unet/diffusion_pytorch_model.safetensors"),
            read_file(test::tiny_model() + "/unet/diffusion_pytorch_model.safetensors"));
  EXPECT_EQ(read_file(back.snapshot_dir + "/notes.txt"), "first\n");
  // change one small file: only it is committed, no LFS upload
  write_file_atomic((dir / "notes.txt").string(), "second\n");
  const int puts = emu.lfs_puts + emu.part_puts;
  auto rep2 = hub::push_folder(cfg, dir.string(), po);
  EXPECT_EQ(rep2.plan.upload, std::vector<std::string>{"notes.txt"});
  EXPECT_EQ(emu.last_commit_paths, std::vector<std::string>{"notes.txt"});
  EXPECT_EQ(emu.lfs_puts + emu.part_puts, puts);
  // nothing changed: no commit at all
  auto rep3 = hub::push_folder(cfg, dir.string(), po);
  EXPECT_TRUE(rep3.commit.empty());
  EXPECT_EQ(emu.commits, 2);
}

TEST_F(HubFixture, MultipartLfsUpload) {
  emu.multipart_threshold = 100000;
  emu.chunk_size = 40000;
  const fs::path dir = cache / "mp";
  fs::create_directories(dir);
  std::string big(130000, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7);
  write_file_atomic((dir / "weights.bin.safetensors").string(), std::string("\x10\0\0\0\0\0\0\0{}              ", 24) + big);
  hub::PushOptions po;
  po.repo = "alice/mp";
  hub::push_folder(cfg, dir.string(), po);
  EXPECT_EQ(emu.part_puts, 4);  // ceil(130024 / 40000)
  EXPECT_EQ(emu.lfs_puts, 0);
  auto back = hub::pull_model(cfg, "alice/mp", {});
  EXPECT_EQ(read_file(back.snapshot_dir + "/weights.bin.safetensors").size(), 130024u);
}

TEST_F(HubFixture, SecretScanAndValidationBlockThePushBeforeAnyRequest) {
  const fs::path dir = cache / "secret";
  fs::create_directories(dir);
  write_file_atomic((dir / "config.json").string(), R"({"ok": true})");
  write_file_atomic((dir / "train.py").string(), "x = 1\ntoken = 'hf_abcdefghijklmnopqrstuvwxyzABCDEF123456'\n");
  write_file_atomic((dir / ".env").string(), "KEY=1\n");
  hub::PushOptions po;
  po.repo = "alice/leaky";
  try {
    hub::push_folder(cfg, dir.string(), po);
    ADD_FAILURE();
  } catch (const VgException& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("train.py:2: Hugging Face token"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(".env: environment file"), std::string::npos) << e.what();
  }
  EXPECT_EQ(emu.api_requests, 0);
  fs::remove(dir / "train.py");
  fs::remove(dir / ".env");
  write_file_atomic((dir / "config.json").string(), "{broken");
  try {
    hub::push_folder(cfg, dir.string(), po);
    ADD_FAILURE();
  } catch (const VgException& e) {
    EXPECT_EQ(e.code(), ErrorCode::kCorruptFile);
  }
  EXPECT_EQ(emu.api_requests, 0);
  // through the CLI: the findings are listed and the exit code is stable
  write_file_atomic((dir / "config.json").string(), R"({"ok": true})");
  write_file_atomic((dir / "id_rsa").string(), "-----BEGIN OPENSSH PRIVATE KEY-----\n");
  setenv("HF_ENDPOINT", emu.endpoint().c_str(), 1);
  setenv("HF_TOKEN", emu.good_token.c_str(), 1);
  auto r = test::run_cli("hf push model " + dir.string() + " --repo alice/leaky");
  EXPECT_EQ(r.code, 11) << r.out;
  EXPECT_NE(r.out.find("id_rsa: SSH key file"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("id_rsa:1: private key"), std::string::npos) << r.out;
  fs::remove(dir / "id_rsa");
  r = test::run_cli("hf push model " + dir.string() + " --repo alice/clean --interactive < /dev/null");
  EXPECT_EQ(r.code, 10 + static_cast<int>(ErrorCode::kCancelled)) << r.out;  // no "y": nothing uploaded
  EXPECT_EQ(emu.commits, 0);
  unsetenv("HF_ENDPOINT");
  unsetenv("HF_TOKEN");
}

}  // namespace
}  // namespace vg

namespace vg {
namespace {

TEST_F(HubFixture, LocalDirQuantizationFilesAndMagicBytes) {
  // --local-dir: real files and the official metadata, no cache
  hub::PullOptions o;
  o.local_dir = (cache / "local").string();
  o.include = {"unet/*", "model_index.json"};
  auto rep = hub::pull_model(cfg, "org/demo", o);
  const fs::path l = cache / "local";
  EXPECT_FALSE(fs::is_symlink(l / "unet" / "diffusion_pytorch_model.safetensors"));
  EXPECT_EQ(read_file((l / "unet" / "diffusion_pytorch_model.safetensors").string()), std::string(100000, 'u'));
  const std::string meta = read_file((l / ".cache/huggingface/download/unet/diffusion_pytorch_model.safetensors.metadata").string());
  EXPECT_EQ(meta.rfind(rep.commit + "\n" + test::sha256_of(std::string(100000, 'u')) + "\n", 0), 0u) << meta;
  EXPECT_EQ(read_file((l / ".cache/huggingface/.gitignore").string()), "*");
  EXPECT_FALSE(fs::exists(cache / "models--org--demo" / "blobs"));
  const int cdn = emu.cdn_requests;
  hub::pull_model(cfg, "org/demo", o);
  EXPECT_EQ(emu.cdn_requests, cdn);  // metadata matched: nothing fetched again
  // --quantization picks one GGUF among several
  test::EmuRepo g{"org/gguf", "8888888888888888888888888888888888888888",
                  {{"model-Q4_K_M.gguf", "GGUF-q4", true}, {"model-Q8_0.gguf", "GGUF-q8", true}, {"README.md", "hi", false}}};
  emu.repos[g.id] = g;
  hub::PullOptions q;
  q.quantization = "q8_0";
  auto qr = hub::pull_model(cfg, "org/gguf", q);
  ASSERT_EQ(qr.files.size(), 2u);
  EXPECT_EQ(qr.files[0].path, "model-Q8_0.gguf");
  q.quantization = "Q2_K";
  EXPECT_THROW(hub::pull_model(cfg, "org/gguf", q), VgException);
  // pull files: exactly the named paths
  hub::PullOptions f;
  f.files = {"README.md"};
  auto fr = hub::pull_model(cfg, "org/demo", f);
  ASSERT_EQ(fr.files.size(), 1u);
  f.files = {"nope.txt"};
  EXPECT_THROW(hub::pull_model(cfg, "org/demo", f), VgException);
  // a pickle named .safetensors is refused by its magic bytes
  test::EmuRepo bad{"org/disguised", "9999999999999999999999999999999999999999", {{"model.safetensors", std::string("\x80\x04\x95rest", 8), true}}};
  emu.repos[bad.id] = bad;
  try {
    hub::pull_model(cfg, "org/disguised", {});
    ADD_FAILURE();
  } catch (const VgException& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnsupportedFormat);
    EXPECT_NE(std::string(e.what()).find("pickle"), std::string::npos);
  }
  EXPECT_TRUE(fs::is_empty(cache / "models--org--disguised" / "blobs"));
}

}  // namespace
}  // namespace vg

#include "server/hf_mirror.h"

namespace vg {
namespace {

TEST_F(HubFixture, MirrorServesACacheThatPullsIntoTheSameLayout) {
  hub::PullOptions o;
  auto a = hub::pull_model(cfg, "org/demo", o);
  server::HfMirror mirror(cache.string(), "127.0.0.1", 0);
  auto port = mirror.start();
  ASSERT_TRUE(port);
  hub::HubConfig viaMirror = cfg;
  viaMirror.endpoint = "http://127.0.0.1:" + std::to_string(*port);
  viaMirror.token.clear();
  viaMirror.cache_dir = (cache / "second").string();
  auto b = hub::pull_model(viaMirror, "org/demo", o);
  EXPECT_EQ(b.commit, a.commit);
  const fs::path ra = cache / "models--org--demo", rb = cache / "second" / "models--org--demo";
  std::vector<std::string> la, lb;
  for (const auto& f : fs::recursive_directory_iterator(ra)) la.push_back(f.path().lexically_relative(ra).string());
  for (const auto& f : fs::recursive_directory_iterator(rb)) lb.push_back(f.path().lexically_relative(rb).string());
  std::sort(la.begin(), la.end());
  std::sort(lb.begin(), lb.end());
  EXPECT_EQ(la, lb);  // same blob names, snapshot links and refs
  EXPECT_EQ(read_file((rb / "refs" / "main").string()), a.commit);
  hub::PullOptions missing;
  missing.files = {"nope.txt"};
  EXPECT_THROW(hub::pull_model(viaMirror, "org/demo", missing), VgException);
  EXPECT_THROW(hub::pull_model(viaMirror, "org/absent", o), VgException);
  mirror.stop();
}

}  // namespace
}  // namespace vg

namespace vg {
namespace {

TEST_F(HubFixture, HubSecurityScanRefusesFlaggedFilesEvenWhenUnsafeIsAllowed) {
  auto& files = emu.repos["org/demo"].files;
  files.push_back({"vae/diffusion_pytorch_model.safetensors", std::string(2000, 'v'), true, "virus"});
  files.push_back({"text_encoder/model.safetensors", std::string(2000, 't'), true, "unscanned"});
  files[3].scan = "dangerous";  // pytorch_model.bin: dangerous pickle imports
  hub::PullOptions o;
  o.allow_unsafe = true;
  auto rep = hub::pull_model(cfg, "org/demo", o);
  ASSERT_EQ(rep.refused_by_scan.size(), 2u);
  std::string all;
  for (const auto& r : rep.refused_by_scan) all += r + ";";
  EXPECT_NE(all.find("vae/diffusion_pytorch_model.safetensors (virus found (Eicar-Test-Signature))"), std::string::npos) << all;
  EXPECT_NE(all.find("pytorch_model.bin (dangerous pickle imports)"), std::string::npos) << all;
  EXPECT_EQ(rep.unscanned, std::vector<std::string>{"text_encoder/model.safetensors"});
  const fs::path snap = rep.snapshot_dir;
  EXPECT_FALSE(fs::exists(snap / "vae" / "diffusion_pytorch_model.safetensors"));
  EXPECT_FALSE(fs::exists(snap / "pytorch_model.bin"));
  EXPECT_TRUE(fs::exists(snap / "text_encoder" / "model.safetensors"));  // unknown is not refused, but reported
  EXPECT_TRUE(fs::exists(snap / "unet" / "diffusion_pytorch_model.safetensors"));
  // naming a flagged file is an error, not a silent skip
  hub::PullOptions one;
  one.files = {"vae/diffusion_pytorch_model.safetensors"};
  try {
    hub::pull_model(cfg, "org/demo", one);
    FAIL() << "a flagged file was fetched";
  } catch (const VgException& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnsupportedFormat);
    EXPECT_NE(std::string(e.what()).find("security scan"), std::string::npos) << e.what();
  }
  // info shows each file's scan verdict
  auto info = hub::repo_info(cfg, "model", "org/demo", "main");
  std::map<std::string, std::string> scan;
  for (const auto& f : info["files"]) scan[f["path"]] = f["scan"];
  EXPECT_EQ(scan["unet/diffusion_pytorch_model.safetensors"], "safe");
  EXPECT_EQ(scan["text_encoder/model.safetensors"], "unknown");
  EXPECT_EQ(scan["pytorch_model.bin"], "dangerous pickle imports");
}

TEST_F(HubFixture, LocksNoExistAndCacheTagAsTheOfficialClient) {
  emu.slow_ms = 20;
  hub::PullOptions o;
  o.include = {"unet/*"};
  // two pulls of the same blob at once: the lock makes one download it
  std::vector<std::thread> ts;
  std::atomic<int> ok{0};
  for (int i = 0; i < 2; ++i)
    ts.emplace_back([&] {
      try {
        hub::pull_model(cfg, "org/demo", o);
        ++ok;
      } catch (const std::exception& e) {
        ADD_FAILURE() << e.what();
      }
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(ok, 2);
  EXPECT_EQ(emu.cdn_requests, 1);
  const std::string etag = test::sha256_of(std::string(100000, 'u'));
  EXPECT_TRUE(fs::exists(cache / ".locks" / "models--org--demo" / (etag + ".lock")));
  EXPECT_EQ(read_file((cache / "models--org--demo" / "blobs" / etag).string()), std::string(100000, 'u'));
  EXPECT_EQ(read_file((cache / "CACHEDIR.TAG").string()).rfind("Signature: 8a477f597d28d172789f06886806bc55\n", 0), 0u);
  // a path that does not exist at the commit is recorded in .no_exist
  hub::PullOptions missing;
  missing.files = {"sub/missing.txt"};
  EXPECT_THROW(hub::pull_model(cfg, "org/demo", missing), VgException);
  const fs::path marker = cache / "models--org--demo" / ".no_exist" / emu.repos["org/demo"].commit / "sub" / "missing.txt";
  ASSERT_TRUE(fs::exists(marker));
  EXPECT_EQ(fs::file_size(marker), 0u);
}

TEST_F(HubFixture, RateLimitHeaderWinsOverRetryAfterWithACountdownOnATerminal) {
  emu.api_ratelimit_429 = 1;  // RateLimit says t=1 (wait 2 s); Retry-After says 5 (would be 6 s)
  hub::PullOptions o;
  o.include = {"*.json"};
  const auto t0 = std::chrono::steady_clock::now();
  auto rep = hub::pull_model(cfg, "org/demo", o);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(rep.files.size(), 1u);
  EXPECT_GE(s, 1.9);
  EXPECT_LT(s, 5.0);
  // the CLI on a terminal shows the countdown; in a pipe it does not
  setenv("HF_ENDPOINT", emu.endpoint().c_str(), 1);
  setenv("HF_HUB_CACHE", cache.string().c_str(), 1);
  emu.api_ratelimit_429 = 1;
  const std::string cmd = std::string(VG_CLI_PATH) + " hf pull model org/demo --include '*.md'";
  FILE* p = popen(("script -qec \"" + cmd + "\" /dev/null 2>&1").c_str(), "r");
  std::string tty_out;
  char buf[4096];
  for (size_t n; (n = fread(buf, 1, sizeof buf, p)) > 0;) tty_out.append(buf, n);
  EXPECT_EQ(pclose(p), 0) << tty_out;
  EXPECT_NE(tty_out.find("rate limited by the Hub (HTTP 429); retrying in 2 s"), std::string::npos) << tty_out;
  emu.api_ratelimit_429 = 1;
  auto r = test::run_cli("hf pull model org/demo --include '*.md'");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.out.find("retrying"), std::string::npos) << r.out;
  unsetenv("HF_ENDPOINT");
  unsetenv("HF_HUB_CACHE");
}

TEST_F(HubFixture, DatasetSplitAndSearchFiltersThroughTheCli) {
  test::EmuRepo ds{"org/captions", "8888888888888888888888888888888888888888",
                   {{"README.md", "---\nlanguage: en\n---\n", false},
                    {"data/train-00000-of-00002.parquet", std::string(3000, '1'), true},
                    {"data/train-00001-of-00002.parquet", std::string(3000, '2'), true},
                    {"data/test-00000-of-00001.parquet", std::string(3000, '3'), true}}};
  ds.kind = "dataset";
  ds.tags = {"language:en", "size_categories:1K<n<10K"};
  emu.repos[ds.id] = ds;
  test::EmuRepo ds_fr{"org/legendes", "9999999999999999999999999999999999999999", {{"README.md", "x", false}}};
  ds_fr.kind = "dataset";
  ds_fr.tags = {"language:fr", "size_categories:n<1K"};
  emu.repos[ds_fr.id] = ds_fr;
  test::EmuRepo sp{"org/demo-space", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", {{"app.py", "print(1)\n", false}}};
  sp.kind = "space";
  sp.tags = {"gradio"};
  emu.repos[sp.id] = sp;
  test::EmuRepo sp2{"org/other-space", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", {{"Dockerfile", "FROM x\n", false}}};
  sp2.kind = "space";
  sp2.tags = {"docker"};
  emu.repos[sp2.id] = sp2;
  setenv("HF_ENDPOINT", emu.endpoint().c_str(), 1);
  setenv("HF_HUB_CACHE", cache.string().c_str(), 1);
  auto ids = [](const std::string& out) {
    std::vector<std::string> v;
    for (const auto& e : nlohmann::json::parse(out)) v.push_back(e["id"]);
    return v;
  };
  auto r = test::run_cli("hf search datasets --language en --json");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(ids(r.out), std::vector<std::string>{"org/captions"});
  r = test::run_cli("hf search datasets --size 'n<1K' --json");
  EXPECT_EQ(ids(r.out), std::vector<std::string>{"org/legendes"}) << r.out;
  r = test::run_cli("hf search spaces --sdk gradio --json");
  EXPECT_EQ(ids(r.out), std::vector<std::string>{"org/demo-space"}) << r.out;
  EXPECT_EQ(test::run_cli("hf search models --sdk gradio").code, 10 + static_cast<int>(ErrorCode::kInvalidArgument));
  for (const auto& [kind, id, file] : {std::tuple<std::string, std::string, std::string>{"dataset", "org/captions", "data/test-00000-of-00001.parquet"},
                                       {"space", "org/demo-space", "app.py"}}) {
    r = test::run_cli("hf info " + kind + " " + id + " --json");
    ASSERT_EQ(r.code, 0) << r.out;
    const auto info = nlohmann::json::parse(r.out);
    EXPECT_EQ(info["id"], id);
    EXPECT_EQ(info["kind"], kind);
    bool listed = false;
    for (const auto& f : info["files"]) listed |= f["path"] == file;
    EXPECT_TRUE(listed) << r.out;
  }
  r = test::run_cli("hf pull dataset org/captions --split train --json");
  ASSERT_EQ(r.code, 0) << r.out;
  std::vector<std::string> got;
  const auto report = nlohmann::json::parse(r.out);
  for (const auto& f : report["files"]) got.push_back(f["path"]);
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, (std::vector<std::string>{"README.md", "data/train-00000-of-00002.parquet", "data/train-00001-of-00002.parquet"})) << r.out;
  r = test::run_cli("hf pull dataset org/captions --split validation");
  EXPECT_EQ(r.code, 10 + static_cast<int>(ErrorCode::kFileNotFound));
  EXPECT_NE(r.out.find("splits found: train, test"), std::string::npos) << r.out;
  EXPECT_TRUE(hub::in_split("train/part.jsonl", "train"));
  EXPECT_TRUE(hub::in_split("cfg/train.csv", "train"));
  EXPECT_FALSE(hub::in_split("data/training-extra.parquet", "train"));
  unsetenv("HF_ENDPOINT");
  unsetenv("HF_HUB_CACHE");
}

TEST_F(HubFixture, PushAsPullRequestLeavesMainAndPullsByPrRef) {
  const fs::path dir = cache / "pr";
  fs::create_directories(dir);
  write_file_atomic((dir / "config.json").string(), "{\"a\":1}");
  write_file_atomic((dir / "README.md").string(), "---\nlicense: mit\n---\n");
  const std::string main_before = emu.repos["org/demo"].commit;
  hub::PushOptions po;
  po.repo = "org/demo";
  po.create_pr = true;
  auto rep = hub::push_folder(cfg, dir.string(), po);
  EXPECT_EQ(rep.pull_request_ref, "refs/pr/1");
  EXPECT_NE(rep.pull_request_url.find("/discussions/1"), std::string::npos);
  EXPECT_EQ(emu.repos["org/demo"].commit, main_before);  // main untouched
  hub::PullOptions o;
  o.revision = "refs/pr/1";
  o.include = {"config.json"};
  auto pulled = hub::pull_model(cfg, "org/demo", o);
  EXPECT_EQ(pulled.commit, rep.commit);
  EXPECT_EQ(read_file(pulled.snapshot_dir + "/config.json"), "{\"a\":1}");
  // the ref is a nested file without a newline, as the official client writes it
  EXPECT_EQ(read_file((cache / "models--org--demo" / "refs" / "refs" / "pr" / "1").string()), rep.commit);
}

}  // namespace
}  // namespace vg
