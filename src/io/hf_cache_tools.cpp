#include "io/hf_cache_tools.h"

#include <sys/stat.h>

#include <algorithm>
#include <filesystem>

#include "core/hash.h"
#include "core/error.h"
#include "io/atomic_file.h"

namespace vg {

namespace fs = std::filesystem;

namespace {

int64_t atime_of(const fs::path& p) {
  struct stat st {};
  if (::stat(p.c_str(), &st) != 0) return 0;
  return std::max<int64_t>(st.st_atime, st.st_mtime);
}

}  // namespace

nlohmann::json CachedRepo::to_json() const {
  nlohmann::json r = nlohmann::json::object();
  for (const auto& [ref, commit] : refs) r[ref] = commit;
  return {{"type", type}, {"id", id}, {"path", path}, {"bytes", bytes}, {"last_access", last_access}, {"refs", r},
          {"snapshots", snapshots}};
}

std::vector<CachedRepo> hf_cache_list(const std::string& dir) {
  std::vector<CachedRepo> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    const size_t sep = name.find("--");
    if (!e.is_directory() || sep == std::string::npos) continue;
    CachedRepo r;
    const std::string kind = name.substr(0, sep);
    if (kind != "models" && kind != "datasets" && kind != "spaces") continue;
    r.type = kind.substr(0, kind.size() - 1);
    std::string id = name.substr(sep + 2);
    const size_t s2 = id.find("--");
    if (s2 != std::string::npos) id.replace(s2, 2, "/");
    r.id = id;
    r.path = e.path().string();
    for (const auto& b : fs::directory_iterator(e.path() / "blobs", ec))
      if (b.is_regular_file()) {
        r.bytes += b.file_size(ec);
        r.last_access = std::max(r.last_access, atime_of(b.path()));
      }
    for (const auto& f : fs::directory_iterator(e.path() / "refs", ec))
      if (f.is_regular_file()) r.refs.push_back({f.path().filename().string(), read_file(f.path().string())});
    for (const auto& s : fs::directory_iterator(e.path() / "snapshots", ec)) r.snapshots.push_back(s.path().filename().string());
    std::sort(r.snapshots.begin(), r.snapshots.end());
    out.push_back(std::move(r));
  }
  std::sort(out.begin(), out.end(), [](const CachedRepo& a, const CachedRepo& b) { return a.id < b.id; });
  return out;
}

std::vector<std::string> hf_cache_verify(const std::string& dir) {
  std::vector<std::string> bad;
  for (const auto& r : hf_cache_list(dir)) {
    std::error_code ec;
    for (const auto& b : fs::directory_iterator(fs::path(r.path) / "blobs", ec)) {
      const std::string name = b.path().filename().string();
      if (name.find(".incomplete") != std::string::npos) continue;
      const std::string data = read_file(b.path().string());
      // LFS blobs are named by the content's sha256, regular git files by their blob sha1.
      const std::string got = name.size() == 64 ? sha256_hex(data) : git_blob_sha1_hex(data);
      if (got != name) bad.push_back(b.path().string());
    }
  }
  return bad;
}

bool hf_cache_remove(const std::string& dir, const std::string& repo_id) {
  for (const auto& r : hf_cache_list(dir))
    if (r.id == repo_id) {
      std::error_code ec;
      fs::remove_all(r.path, ec);
      return !ec;
    }
  return false;
}

std::vector<std::string> hf_cache_prune(const std::string& dir, uint64_t max_bytes) {
  auto repos = hf_cache_list(dir);
  std::sort(repos.begin(), repos.end(), [](const CachedRepo& a, const CachedRepo& b) { return a.last_access < b.last_access; });
  uint64_t total = 0;
  for (const auto& r : repos) total += r.bytes;
  std::vector<std::string> removed;
  for (const auto& r : repos) {
    if (total <= max_bytes) break;
    std::error_code ec;
    fs::remove_all(r.path, ec);
    total -= r.bytes;
    removed.push_back(r.id);
  }
  return removed;
}

}  // namespace vg
