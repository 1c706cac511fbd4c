#include "pipelines/a1111_yaml.h"

#include <yaml-cpp/yaml.h>

#include <filesystem>

#include "core/error.h"
#include "io/atomic_file.h"

namespace vg {

A1111YamlHints parse_a1111_yaml(const std::string& text, const std::string& name) {
  A1111YamlHints h;
  try {
    YAML::Node root = YAML::Load(text);
    if (!root.IsMap()) return h;
    YAML::Node params = root["model"]["params"];
    if (params["parameterization"]) h.parameterization = params["parameterization"].as<std::string>();
    YAML::Node up = params["unet_config"]["params"];
    if (up["num_heads"]) h.num_heads = up["num_heads"].as<int>();
    if (up["num_head_channels"]) h.num_head_channels = up["num_head_channels"].as<int>();
  } catch (const YAML::Exception& e) {
    fail(ErrorCode::kCorruptFile, "'" + name + "' is not valid YAML or not an LDM config: " + e.what());
  }
  return h;
}

A1111YamlHints read_a1111_yaml(const std::string& ckpt) {
  namespace fs = std::filesystem;
  const std::string y = (fs::path(ckpt).parent_path() / fs::path(ckpt).stem()).string() + ".yaml";
  std::error_code ec;
  if (!fs::exists(y, ec)) return {};
  return parse_a1111_yaml(read_file(y), y);
}

}  // namespace vg
