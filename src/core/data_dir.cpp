#include "core/data_dir.h"

#include <dlfcn.h>

#include <cstdlib>
#include <filesystem>
#include <vector>

namespace vg {

namespace fs = std::filesystem;

namespace {

constexpr const char* kDemo = "models/visiongen-shapes";

bool has_demo(const fs::path& dir) {
  std::error_code ec;
  return fs::exists(dir / kDemo / "model_index.json", ec);
}

// The folders the code runs from: this library's file (libvisiongen.so, or
// the program it is linked into) and the program.
std::vector<fs::path> origins() {
  std::vector<fs::path> out;
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&data_dir), &info) && info.dli_fname && *info.dli_fname) {
    std::error_code ec;
    fs::path p = fs::weakly_canonical(fs::path(info.dli_fname), ec);
    if (!ec) out.push_back(p.parent_path());
  }
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) out.push_back(exe.parent_path());
  return out;
}

// Walks up from each origin: <dir>/share/visiongen (an install prefix) or,
// for a build tree, <dir> itself when it holds models/ (the source root).
std::string find_up(bool source_tree) {
  for (const fs::path& start : origins())
    for (fs::path dir = start; !dir.empty(); dir = dir.parent_path()) {
      const fs::path c = source_tree ? dir : dir / "share" / "visiongen";
      if (has_demo(c)) return c.string();
      if (dir == dir.root_path()) break;
    }
  return "";
}

}  // namespace

std::string data_dir() {
  if (const char* env = std::getenv("VG_DATA_DIR"); env && *env) return env;
  std::string d = find_up(false);
  return d.empty() ? find_up(true) : d;
}

std::string default_model_path(const std::string& data_dir_override) {
  if (const char* env = std::getenv("VG_DEFAULT_MODEL"); env && *env) return env;
  const std::string dir = data_dir_override.empty() ? data_dir() : data_dir_override;
  if (!dir.empty() && has_demo(dir)) return (fs::path(dir) / kDemo).string();
  return "";
}

}  // namespace vg
