#include "registry/presets.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <map>

#include "core/error.h"
#include "core/params_json.h"
#include "io/atomic_file.h"
#include "registry/presets_builtin.h"

namespace vg {

namespace {

namespace fs = std::filesystem;

struct Preset {
  std::string name;
  std::vector<std::string> families;
  std::string mode, task;
  YAML::Node fill;
};

Preset parse(const std::string& text, const std::string& name) {
  Preset p;
  p.name = name;
  try {
    YAML::Node n = YAML::Load(text);
    if (!n.IsMap()) fail(ErrorCode::kCorruptFile, "preset " + name + " is not a YAML mapping");
    for (auto it = n.begin(); it != n.end(); ++it) {
      const std::string k = it->first.as<std::string>();
      if (k != "family" && k != "mode" && k != "task" && k != "fill")
        fail(ErrorCode::kCorruptFile, "preset " + name + ": unknown field '" + k + "'");
    }
    if (n["family"].IsSequence())
      for (const auto& f : n["family"]) p.families.push_back(f.as<std::string>());
    else
      p.families.push_back(n["family"].as<std::string>());
    p.mode = n["mode"].as<std::string>();
    p.task = n["task"] ? n["task"].as<std::string>() : "*";
    p.fill = n["fill"];
    if (!p.fill || !p.fill.IsMap()) fail(ErrorCode::kCorruptFile, "preset " + name + ": 'fill' must be a mapping");
  } catch (const YAML::Exception& e) {
    fail(ErrorCode::kCorruptFile, "preset " + name + " is not valid YAML: " + e.what());
  }
  return p;
}

// The preset's fill as JSON values (YAML scalars: integer, number, bool or
// string), without the fields the user set. corrupt_file for a non-scalar.
nlohmann::json fill_json(const Preset& pr, const std::set<std::string>& user_set) {
  nlohmann::json fill = nlohmann::json::object();
  try {
    for (auto it = pr.fill.begin(); it != pr.fill.end(); ++it) {
      const std::string k = it->first.as<std::string>();
      if (user_set.count(k)) continue;  // never override the user
      const YAML::Node v = it->second;  // a copy: the iterator gives a temporary (a reference dangled)
      if (!v.IsScalar()) fail(ErrorCode::kCorruptFile, "preset " + pr.name + ": fill value of '" + k + "' is not a scalar");
      nlohmann::json jv;
      int64_t i = 0;
      double d = 0;
      bool b = false;
      if (YAML::convert<int64_t>::decode(v, i)) jv = i;
      else if (YAML::convert<double>::decode(v, d)) jv = d;
      else if (YAML::convert<bool>::decode(v, b)) jv = b;
      else jv = v.as<std::string>();
      fill[k] = jv;
    }
  } catch (const YAML::Exception& e) {
    fail(ErrorCode::kCorruptFile, "preset " + pr.name + " is not valid YAML: " + e.what());
  }
  return fill;
}

// Fills `p` from the preset (what the user did not set); returns the fill.
// corrupt_file when a value does not fit its field.
nlohmann::json fill_params(const Preset& pr, const std::set<std::string>& user_set, GenerateParams* p) {
  nlohmann::json fill = fill_json(pr, user_set);
  Status st = params_from_json(fill, p, true);
  if (!st) fail(ErrorCode::kCorruptFile, "preset " + pr.name + ": " + st.error().message);
  return fill;
}

std::vector<Preset> all_presets() {
  std::map<std::string, std::string> files;  // name -> text; user files replace built-ins
  for (const auto& [name, text] : builtin_presets()) files[name] = text;
  std::string dir;
  if (const char* d = std::getenv("VG_PRESET_DIR"); d && *d) dir = d;
  else if (const char* h = std::getenv("HOME"); h) dir = std::string(h) + "/.config/visiongen/presets";
  std::error_code ec;
  if (!dir.empty() && fs::is_directory(dir, ec))
    for (const auto& e : fs::directory_iterator(dir, ec))
      if (e.path().extension() == ".yaml") files[e.path().filename().string()] = read_file(e.path().string());
  std::vector<Preset> out;
  for (const auto& [name, text] : files) out.push_back(parse(text, name));
  return out;
}

}  // namespace

PresetReport apply_preset(const std::string& family, const std::string& mode, const std::string& task,
                          const std::set<std::string>& user_set, GenerateParams* p) {
  PresetReport r;
  static const char* kModes[] = {"normal", "lcm", "turbo", "lightning"};
  if (std::find(std::begin(kModes), std::end(kModes), mode) == std::end(kModes))
    fail(ErrorCode::kInvalidArgument, "mode '" + mode + "' is unknown; use normal, lcm, turbo or lightning");
  const Preset* chosen = nullptr;
  const auto presets = all_presets();
  for (const auto& pr : presets) {
    if (pr.mode != mode || (pr.task != "*" && pr.task != task)) continue;
    if (std::find(pr.families.begin(), pr.families.end(), family) == pr.families.end()) continue;
    chosen = &pr;
    if (pr.task == task) break;  // an exact task match beats "*"
  }
  if (!chosen) {
    r.mode_ignored_reason = "no " + mode + " preset for family " + family + " (task " + task + "); mode ignored";
    if (mode == "normal") r.mode_ignored_reason.clear();
    return r;
  }
  r.preset = chosen->name;
  r.applied_patch = fill_params(*chosen, user_set, p);
  return r;
}

void check_preset_text(const std::string& text, const std::string& name) {
  GenerateParams p;
  fill_params(parse(text, name), {}, &p);
}

}  // namespace vg
