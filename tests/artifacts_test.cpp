// The artifact store: atomic, content-addressed, safe with concurrent
// writers and with a writer killed mid-write.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <thread>

#include "artifacts/store.h"
#include "test_util.h"

namespace vg {
namespace {

namespace fs = std::filesystem;

std::string fresh_dir(const std::string& name) {
  const fs::path d = fs::path(testing::TempDir()) / name;
  fs::remove_all(d);
  return d.string();
}

TEST(Artifacts, PutListGetRemove) {
  ArtifactStore s(fresh_dir("vg_art_basic"));
  auto m = s.put("hello", "image/png", 4, 2, {{"seed", 7}});
  EXPECT_EQ(m.id, "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");  // sha256("hello")
  EXPECT_EQ(m.bytes, 5u);
  auto all = s.list();
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].info["seed"], 7);
  EXPECT_EQ(*s.read(m.id), "hello");
  EXPECT_FALSE(s.get("../../etc/passwd"));
  EXPECT_TRUE(s.remove(m.id));
  EXPECT_TRUE(s.list().empty());
  EXPECT_FALSE(s.remove(m.id));
}

TEST(Artifacts, ConcurrentWritersOfTheSameContentMakeOneArtifact) {
  const std::string dir = fresh_dir("vg_art_conc");
  ArtifactStore s(dir);
  const std::string bytes(1 << 20, 'x');
  // Fork before starting the threads: a child forked while another thread
  // holds a library lock (OpenSSL's, malloc's) would deadlock on it.
  pid_t child = fork();
  if (child == 0) {  // another process, writing while the threads below do
    ArtifactStore(dir).put(bytes, "image/png", 1, 1, {});
    _exit(0);
  }
  std::vector<std::thread> ts;
  for (int i = 0; i < 4; ++i) ts.emplace_back([&] { ArtifactStore(dir).put(bytes, "image/png", 1, 1, {}); });
  for (auto& t : ts) t.join();
  int st = 0;
  waitpid(child, &st, 0);
  auto all = s.list();
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(s.read(all[0].id)->size(), bytes.size());
}

TEST(Artifacts, WriterKilledMidWriteLeavesNoVisibleArtifact) {
  const std::string dir = fresh_dir("vg_art_kill");
  ArtifactStore s(dir);
  s.put("kept", "image/png", 1, 1, {});
  pid_t child = fork();
  if (child == 0) {
    setenv("VG_WRITE_DELAY_MS", "20", 1);  // 64 KB per 20 ms: 8 MB takes seconds
    ArtifactStore(dir).put(std::string(8 << 20, 'y'), "image/png", 1, 1, {});
    _exit(0);
  }
  // wait until the child has its (unnamed) output file open in the store, then kill it
  bool started = false;
  for (int i = 0; i < 500 && !(started = test::writes_into(child, dir)); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_TRUE(started);
  kill(child, SIGKILL);
  int st = 0;
  waitpid(child, &st, 0);
  EXPECT_TRUE(WIFSIGNALED(st));
  auto all = s.list();
  ASSERT_EQ(all.size(), 1u);  // only the complete one
  EXPECT_EQ(*s.read(all[0].id), "kept");
  EXPECT_EQ(s.clean_partial(), 0u);  // the half-written file had no name: nothing to clean
  for (const auto& f : fs::recursive_directory_iterator(dir)) EXPECT_EQ(f.path().string().find(".tmp-"), std::string::npos);
  auto again = s.put(std::string(1000, 'y'), "image/png", 1, 1, {});
  EXPECT_EQ(s.list().size(), 2u);
}

}  // namespace
}  // namespace vg
