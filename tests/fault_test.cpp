// Faults while writing: a full disk (a small tmpfs in a private mount
// namespace) and kill -9 during each writer: generated output, artifact
// store, model conversion, Hub download. Each must end in disk_full (or
// nothing at all, when killed) and leave no half-written file.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <random>
#include <thread>

#include "artifacts/store.h"
#include "core/error.h"
#include "hub/hub.h"
#include "hub_emulator.h"
#include "io/atomic_file.h"
#include "io/gguf_writer.h"
#include "pipelines/ldm_checkpoint.h"
#include "quant/ggml_types.h"
#include "test_util.h"
#include "visiongen/visiongen.h"

namespace vg {
namespace {

namespace fs = std::filesystem;

fs::path fresh_dir(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("vg_fault_" + name + "_" + std::to_string(getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

std::vector<std::string> names_in(const fs::path& dir) {
  std::vector<std::string> v;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (!e.is_directory()) v.push_back(fs::relative(e.path(), dir).string());
  std::sort(v.begin(), v.end());
  return v;
}

std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ",") + x;
  return s;
}

bool write_text(const char* path, const std::string& text) {
  const int fd = ::open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ::close(fd);
  return ok;
}

// Runs `fn` in a child process in which `dir` is a fresh tmpfs of `kb` KiB
// (a private mount namespace; without root, inside a user namespace), and
// returns what fn returned, "EXC: ..." for an exception, or "SKIP: ..." when
// this machine allows no private mount.
std::string in_small_disk(const fs::path& dir, int kb, const std::function<std::string()>& fn) {
  int pipefd[2];
  if (pipe(pipefd) != 0) return "SKIP: no pipe";
  const uid_t uid = getuid();
  const gid_t gid = getgid();
  const pid_t pid = fork();
  if (pid == 0) {
    ::close(pipefd[0]);
    std::string out;
    const bool ns = uid == 0 ? unshare(CLONE_NEWNS) == 0
                             : unshare(CLONE_NEWUSER | CLONE_NEWNS) == 0 && write_text("/proc/self/setgroups", "deny") &&
                                   write_text("/proc/self/uid_map", "0 " + std::to_string(uid) + " 1") &&
                                   write_text("/proc/self/gid_map", "0 " + std::to_string(gid) + " 1");
    const std::string size = "size=" + std::to_string(kb) + "k";
    if (!ns || mount("none", "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
        mount("tmpfs", dir.c_str(), "tmpfs", 0, size.c_str()) != 0) {
      out = std::string("SKIP: no private tmpfs here (") + std::strerror(errno) + ")";
    } else {
      try {
        out = fn();
      } catch (const VgException& e) {
        out = std::string("EXC: ") + error_code_name(e.code()) + ": " + e.what();
      } catch (const std::exception& e) {
        out = std::string("EXC: ") + e.what();
      }
    }
    (void)!::write(pipefd[1], out.data(), out.size());
    _exit(0);
  }
  ::close(pipefd[1]);
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = ::read(pipefd[0], buf, sizeof buf)) > 0;) out.append(buf, static_cast<size_t>(n));
  ::close(pipefd[0]);
  int st = 0;
  waitpid(pid, &st, 0);
  if (!WIFEXITED(st)) return "child died";
  return out;
}

#define SKIP_IF_NO_TMPFS(r) \
  if ((r).rfind("SKIP", 0) == 0) GTEST_SKIP() << (r)

// What a failing call threw: "disk_full <message>", or "ok".
std::string outcome(const std::function<void()>& fn) {
  try {
    fn();
    return "ok";
  } catch (const VgException& e) {
    return std::string(error_code_name(e.code())) + " " + e.what();
  }
}

std::string noise(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

TEST(DiskFull, OutputImageFailsWithThePathAndLeavesNothing) {
  const fs::path dir = fresh_dir("out");
  const std::string r = in_small_disk(dir, 64, [&] {
    Image im;
    im.width = im.height = 256;  // noise: about 200 KB of PNG, more than the disk holds
    const std::string px = noise(256 * 256 * 3, 1);
    im.pixels.assign(px.begin(), px.end());
    Status st = save_image(im, (dir / "out.png").string());
    std::string s = st ? "ok" : std::string(error_code_name(st.error().code)) + " " + st.error().message;
    return s + " | files: " + joined(names_in(dir));
  });
  SKIP_IF_NO_TMPFS(r);
  EXPECT_EQ(r.rfind("disk_full", 0), 0u) << r;
  EXPECT_NE(r.find((dir / "out.png").string()), std::string::npos) << r;
  EXPECT_NE(r.find("free space"), std::string::npos) << r;
  EXPECT_EQ(r.substr(r.find(" | files: ")), " | files: ") << r;
}

TEST(DiskFull, ArtifactStoreStaysConsistentAndKeepsWorking) {
  const fs::path dir = fresh_dir("art");
  const std::string r = in_small_disk(dir, 96, [&] {
    ArtifactStore s(dir.string());
    const std::string first = outcome([&] { s.put(noise(300000, 2), "image/png", 1, 1, {}); });
    const size_t listed = s.list().size();
    const std::string second = outcome([&] { s.put("small", "image/png", 1, 1, {}); });
    return first.substr(0, first.find(' ')) + " " + std::to_string(listed) + " " + second + " " +
           std::to_string(s.list().size()) + " | " + joined(names_in(dir));
  });
  SKIP_IF_NO_TMPFS(r);
  // the big one failed and left nothing visible; the small one after it works
  EXPECT_EQ(r.substr(0, r.find(" | ")), "disk_full 0 ok 1") << r;
  EXPECT_EQ(r.find(".tmp-"), std::string::npos) << r;
}

TEST(DiskFull, GgufConversionLeavesNoFile) {
  const fs::path dir = fresh_dir("gguf");
  const std::string r = in_small_disk(dir, 128, [&] {
    GgufTensorToWrite t{"big.weight", kGgmlF32, {256, 512}, [](uint8_t* d) { std::memset(d, 1, 256 * 512 * 4); }};
    const std::string o = outcome([&] { write_gguf((dir / "m.gguf").string(), {}, {t}); });
    return o + " | files: " + joined(names_in(dir));
  });
  SKIP_IF_NO_TMPFS(r);
  EXPECT_EQ(r.rfind("disk_full", 0), 0u) << r;
  EXPECT_NE(r.find((dir / "m.gguf").string()), std::string::npos) << r;
  EXPECT_EQ(r.substr(r.find(" | files: ")), " | files: ") << r;
}

TEST(DiskFull, HubPullFailsThenResumesOnceThereIsSpace) {
  test::HubEmulator emu;
  const std::string data = noise(400 * 1024, 3);
  test::EmuRepo repo{"org/big", "2222222222222222222222222222222222222222", {{"model.safetensors", data, true}}};
  emu.repos[repo.id] = repo;
  const fs::path dir = fresh_dir("hub");
  hub::HubConfig cfg;
  cfg.endpoint = emu.endpoint();
  cfg.cache_dir = dir.string();
  const std::string r = in_small_disk(dir, 160, [&] {
    const std::string first = outcome([&] { hub::pull_model(cfg, "org/big", {}); });
    const fs::path snap = dir / "models--org--big" / "snapshots" / repo.commit / "model.safetensors";
    const bool linked = fs::exists(snap);
    // more space: the next pull completes the same file
    if (mount(nullptr, dir.c_str(), nullptr, MS_REMOUNT, "size=2m") != 0) return std::string("SKIP: no remount");
    const std::string second = outcome([&] { hub::pull_model(cfg, "org/big", {}); });
    const bool same = fs::exists(snap) && read_file(snap.string()) == data;
    return first + " | linked after failure: " + std::to_string(linked) + " | " + second + " | same: " + std::to_string(same) +
           " | " + joined(names_in(dir / "models--org--big" / "blobs"));
  });
  SKIP_IF_NO_TMPFS(r);
  EXPECT_EQ(r.rfind("disk_full", 0), 0u) << r;
  EXPECT_NE(r.find(".incomplete"), std::string::npos) << r;  // names the file it was writing
  EXPECT_NE(r.find("linked after failure: 0 | ok | same: 1"), std::string::npos) << r;
  EXPECT_EQ(r.substr(r.rfind(" | ") + 3), test::sha256_of(data)) << r;  // one complete blob, no .incomplete
}

// Starts `cmd` (shell syntax) with extra environment, in its own process.
pid_t spawn(const std::string& cmd, const std::vector<std::pair<std::string, std::string>>& env) {
  const pid_t pid = fork();
  if (pid == 0) {
    for (const auto& [k, v] : env) setenv(k.c_str(), v.c_str(), 1);
    const int null = ::open("/dev/null", O_WRONLY);
    dup2(null, 1), dup2(null, 2);
    execl("/bin/sh", "sh", "-c", ("exec " + cmd).c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  return pid;
}

// Kills `pid` with SIGKILL once `ready` holds (polling up to 60 s); true if it was killed while ready.
bool kill_when(pid_t pid, const std::function<bool()>& ready) {
  bool seen = false;
  for (int i = 0; i < 6000 && !seen; ++i) {
    if (waitpid(pid, nullptr, WNOHANG) == pid) return false;  // ended on its own
    seen = ready();
    if (!seen) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  kill(pid, SIGKILL);
  int st = 0;
  waitpid(pid, &st, 0);
  return seen && WIFSIGNALED(st);
}

TEST(Kill, GenerateKilledWhileWritingLeavesNoOutput) {
  const fs::path dir = fresh_dir("kill_gen");
  const std::string args = std::string(VG_CLI_PATH) + " generate -m " + test::tiny_model() +
                           " -p cat --steps 1 --seed 1 -W 64 -H 64 -o " + (dir / "out.png").string();
  const pid_t pid = spawn(args, {{"VG_WRITE_DELAY_MS", "3000"}});
  ASSERT_TRUE(kill_when(pid, [&] { return test::writes_into(pid, dir.string()); }));
  EXPECT_EQ(joined(names_in(dir)), "");  // not even a temp file
  auto r = test::run_cli(args.substr(std::string(VG_CLI_PATH).size() + 1));
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_TRUE(fs::exists(dir / "out.png"));
}

TEST(Kill, ConversionKilledWhileWritingLeavesNoFile) {
  const fs::path dir = fresh_dir("kill_conv");
  convert_diffusers_to_ldm(test::tiny_model(), (dir / "sd1.safetensors").string());
  const fs::path out = dir / "out";
  fs::create_directories(out);
  const std::string args = "convert " + (dir / "sd1.safetensors").string() + " " + (out / "m.gguf").string() + " --type q8_0";
  const pid_t pid = spawn(std::string(VG_CLI_PATH) + " " + args, {{"VG_WRITE_DELAY_MS", "200"}});
  ASSERT_TRUE(kill_when(pid, [&] { return test::writes_into(pid, out.string()); }));
  EXPECT_EQ(joined(names_in(out)), "");
  auto r = test::run_cli(args);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_TRUE(fs::exists(out / "m.gguf"));
}

TEST(Kill, HubPullKilledMidDownloadResumes) {
  test::HubEmulator emu;
  const std::string data = noise(2 << 20, 4);
  test::EmuRepo repo{"org/big", "3333333333333333333333333333333333333333", {{"model.safetensors", data, true}}};
  emu.repos[repo.id] = repo;
  emu.slow_ms = 50;  // 64 KB per 50 ms: about 1.6 s for the file
  const fs::path dir = fresh_dir("kill_hub");
  const fs::path part = dir / "models--org--big" / "blobs" / (test::sha256_of(data) + ".incomplete");
  const pid_t pid = spawn(std::string(VG_CLI_PATH) + " hf pull model org/big",
                          {{"HF_ENDPOINT", emu.endpoint()}, {"HF_HUB_CACHE", dir.string()}});
  ASSERT_TRUE(kill_when(pid, [&] {
    std::error_code ec;
    return fs::exists(part) && fs::file_size(part, ec) >= (256u << 10);
  }));
  const fs::path snap = dir / "models--org--big" / "snapshots" / repo.commit / "model.safetensors";
  EXPECT_FALSE(fs::exists(snap));  // nothing visible
  const auto kept = fs::file_size(part);
  EXPECT_LT(kept, data.size());
  emu.slow_ms = 0;
  hub::HubConfig cfg;
  cfg.endpoint = emu.endpoint();
  cfg.cache_dir = dir.string();
  hub::pull_model(cfg, "org/big", {});
  EXPECT_EQ(read_file(snap.string()), data);
  EXPECT_FALSE(fs::exists(part));
}

TEST(AtomicFile, StaleTempsOfDeadWritersAreRemovedLiveOnesKept) {
  const fs::path dir = fresh_dir("stale");
  const pid_t dead = fork();
  if (dead == 0) _exit(0);
  waitpid(dead, nullptr, 0);
  write_file_atomic((dir / ("a.png.tmp-" + std::to_string(dead) + "-0")).string(), "x");
  write_file_atomic((dir / ("b.png.tmp-" + std::to_string(getpid()) + "-0")).string(), "x");
  write_file_atomic((dir / "c.png").string(), "x");
  EXPECT_EQ(remove_stale_temps(dir.string()), 1u);
  EXPECT_EQ(joined(names_in(dir)), "b.png.tmp-" + std::to_string(getpid()) + "-0,c.png");
}

}  // namespace
}  // namespace vg
