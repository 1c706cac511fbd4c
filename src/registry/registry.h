// The capability registry: what each known model is and can do, shipped with
// the library (data/registry/models.json, embedded at build time) and
// extended or overridden by a user file. Entries are validated on load;
// errors name the file, the entry and the field.
#pragma once
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "visiongen/manager.h"

namespace vg {

struct ModelSpec {
  std::string id;
  std::vector<std::string> ids;  // Hub repos (several: repos move)
  std::string name, family, kind, architecture;
  std::vector<std::string> tasks;
  nlohmann::json defaults, limits, license, files, sources;
  std::string engine;  // engine of this build that runs it; "" = none
  std::vector<std::string> unverified;
  bool runnable() const { return !engine.empty(); }
  bool has_task(const std::string& t) const;
  nlohmann::json to_json() const;
};

using EngineSpec = EngineCapabilities;
nlohmann::json engine_json(const EngineSpec& e);

// Every task name the system knows, including those no engine runs yet.
const std::vector<std::string>& known_tasks();
const std::vector<EngineSpec>& engines();

class Registry {
 public:
  // Built-in entries, then the user file: $VG_REGISTRY_FILE, else
  // ~/.config/visiongen/models.json when present. Throws corrupt_file.
  static Registry load_default();
  static Registry from_json(const nlohmann::json& j, const std::string& origin);
  // Adds or replaces entries (by id) from another registry document.
  void merge(const nlohmann::json& j, const std::string& origin);
  const std::vector<ModelSpec>& models() const { return models_; }
  // By id or any repo id (case-insensitive); nullopt when unknown.
  std::optional<ModelSpec> find(const std::string& id_or_repo) const;

 private:
  std::vector<ModelSpec> models_;
};

const char* builtin_registry_json();

}  // namespace vg
