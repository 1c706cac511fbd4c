#include "io/confined_path.h"

#include <filesystem>

namespace vg {

namespace fs = std::filesystem;

bool is_plain_name(const std::string& name) {
  if (name.empty() || name.size() > 255 || name == "." || name.find("..") != std::string::npos) return false;
  for (char c : name)
    if (c == '/' || c == '\\' || static_cast<unsigned char>(c) < 0x20) return false;
  return true;
}

bool stays_inside(const std::string& path, const std::string& dir) {
  std::error_code ec;
  const fs::path target = fs::weakly_canonical(path, ec);
  if (ec) return false;
  const fs::path root = fs::weakly_canonical(dir, ec);
  if (ec) return false;
  const std::string r = root.string();
  return target.string().rfind(r.back() == '/' ? r : r + "/", 0) == 0;
}

std::string find_inside(const std::vector<std::string>& dirs, const std::string& name, const std::vector<std::string>& exts) {
  if (!is_plain_name(name)) return "";
  std::error_code ec;
  for (const auto& d : dirs)
    for (const auto& ext : exts) {
      const std::string p = (fs::path(d) / (name + ext)).string();
      if (fs::exists(p, ec) && stays_inside(p, d)) return p;
    }
  return "";
}

}  // namespace vg
