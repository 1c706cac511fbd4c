#include "registry/registry.h"

#include <algorithm>
#include <cstdlib>

#include "core/error.h"
#include "io/atomic_file.h"
#include "registry/registry_json.h"

namespace vg {

const char* builtin_registry_json() { return kRegistryJson; }

bool ModelSpec::has_task(const std::string& t) const { return std::find(tasks.begin(), tasks.end(), t) != tasks.end(); }

nlohmann::json ModelSpec::to_json() const {
  return {{"id", id},           {"ids", ids},       {"name", name},         {"family", family},
          {"kind", kind},       {"architecture", architecture}, {"tasks", tasks}, {"defaults", defaults},
          {"limits", limits},   {"license", license}, {"files", files},     {"engine", engine.empty() ? nlohmann::json(nullptr) : nlohmann::json(engine)},
          {"runnable", runnable()}, {"unverified", unverified}, {"sources", sources}};
}

nlohmann::json engine_json(const EngineSpec& e) {
  return {{"name", e.name}, {"families", e.families}, {"tasks", e.tasks}, {"mask", e.mask}, {"lora", e.lora},
          {"size_multiple", e.size_multiple}, {"max_size", e.max_size}, {"max_frames", e.max_frames},
          {"weight_dtypes", e.weight_dtypes}, {"devices", e.devices}};
}

const std::vector<std::string>& known_tasks() {
  static const std::vector<std::string> k = {"text_to_image", "image_to_image", "inpaint", "outpainting", "image_edit",
                                             "text_to_video", "image_to_video", "video_to_video", "upscale",
                                             "vae_encode", "vae_decode", "latent_preview"};
  return k;
}

const std::vector<EngineCapabilities>& builtin_engines() {
  static const std::vector<EngineCapabilities> k = {
      {"cpu", {"stable-diffusion-1-x", "stable-diffusion-2-x", "sdxl", "flux-1", "sd3-sd3-5", "z-image", "qwen-image"}, {"text_to_image", "image_to_image", "inpaint"},
       {"f32", "f16", "bf16"}, {"cpu"}, true, true, 8, 4096, 0},
      {"cpu-video", {"wan-2-2"}, {"text_to_video", "image_to_video"}, {"f32", "f16", "bf16"}, {"cpu"}, false, false, 32,
       1920, 1025}};
  return k;
}

const std::vector<EngineSpec>& engines() { return builtin_engines(); }

namespace {

[[noreturn]] void bad(const std::string& origin, const std::string& entry, const std::string& field, const std::string& what) {
  fail(ErrorCode::kCorruptFile, origin + ": entry '" + entry + "': field '" + field + "' " + what);
}

std::vector<std::string> strings(const nlohmann::json& v, const std::string& origin, const std::string& id, const char* f) {
  if (!v.is_array()) bad(origin, id, f, "must be a list of strings");
  std::vector<std::string> out;
  for (const auto& e : v) {
    if (!e.is_string()) bad(origin, id, f, "must be a list of strings");
    out.push_back(e.get<std::string>());
  }
  return out;
}

ModelSpec parse_entry(const nlohmann::json& e, const std::string& origin, size_t index) {
  if (!e.is_object()) fail(ErrorCode::kCorruptFile, origin + ": models[" + std::to_string(index) + "] is not an object");
  if (!e.contains("id") || !e["id"].is_string() || e["id"].get<std::string>().empty())
    fail(ErrorCode::kCorruptFile, origin + ": models[" + std::to_string(index) + "]: field 'id' is required (a string)");
  ModelSpec m;
  m.id = e["id"];
  static const std::vector<std::string> kKnown = {"id", "ids", "name", "family", "kind", "architecture", "tasks", "defaults",
                                                  "limits", "license", "files", "engine", "unverified", "sources"};
  for (auto it = e.begin(); it != e.end(); ++it)
    if (std::find(kKnown.begin(), kKnown.end(), it.key()) == kKnown.end()) bad(origin, m.id, it.key(), "is not a registry field");
  auto str = [&](const char* f, std::string* out) {
    if (!e.contains(f) || e[f].is_null()) return;
    if (!e[f].is_string()) bad(origin, m.id, f, "must be a string");
    *out = e[f];
  };
  auto obj = [&](const char* f, nlohmann::json* out) {
    if (!e.contains(f) || e[f].is_null()) return;
    if (!e[f].is_object()) bad(origin, m.id, f, "must be an object");
    *out = e[f];
  };
  str("name", &m.name);
  str("family", &m.family);
  str("kind", &m.kind);
  str("architecture", &m.architecture);
  str("engine", &m.engine);
  if (e.contains("ids")) m.ids = strings(e["ids"], origin, m.id, "ids");
  if (e.contains("tasks")) m.tasks = strings(e["tasks"], origin, m.id, "tasks");
  if (e.contains("unverified")) m.unverified = strings(e["unverified"], origin, m.id, "unverified");
  for (const auto& t : m.tasks)
    if (std::find(known_tasks().begin(), known_tasks().end(), t) == known_tasks().end())
      bad(origin, m.id, "tasks", "has unknown task '" + t + "'");
  if (!m.engine.empty() && std::none_of(engines().begin(), engines().end(), [&](const EngineSpec& s) { return s.name == m.engine; }))
    bad(origin, m.id, "engine", "names unknown engine '" + m.engine + "'");
  obj("defaults", &m.defaults);
  obj("limits", &m.limits);
  obj("license", &m.license);
  obj("files", &m.files);
  obj("sources", &m.sources);
  if (m.defaults.contains("steps") && !m.defaults["steps"].is_null() && !m.defaults["steps"].is_number_integer())
    bad(origin, m.id, "defaults.steps", "must be an integer");
  if (m.limits.contains("size_multiple") && !m.limits["size_multiple"].is_null() &&
      (!m.limits["size_multiple"].is_number_integer() || m.limits["size_multiple"].get<int>() <= 0))
    bad(origin, m.id, "limits.size_multiple", "must be a positive integer");
  return m;
}

}  // namespace

void Registry::merge(const nlohmann::json& j, const std::string& origin) {
  if (!j.is_object()) fail(ErrorCode::kCorruptFile, origin + ": the registry must be a JSON object");
  if (!j.contains("schema_version") || !j["schema_version"].is_number_integer() || j["schema_version"] != 1)
    fail(ErrorCode::kCorruptFile, origin + ": field 'schema_version' must be 1");
  if (!j.contains("models") || !j["models"].is_array()) fail(ErrorCode::kCorruptFile, origin + ": field 'models' must be a list");
  for (auto it = j.begin(); it != j.end(); ++it)
    if (it.key() != "schema_version" && it.key() != "models" && it.key() != "source")
      fail(ErrorCode::kCorruptFile, origin + ": field '" + it.key() + "' is not a registry field");
  size_t i = 0;
  for (const auto& e : j["models"]) {
    ModelSpec m = parse_entry(e, origin, i++);
    auto at = std::find_if(models_.begin(), models_.end(), [&](const ModelSpec& x) { return x.id == m.id; });
    if (at != models_.end()) *at = std::move(m);
    else models_.push_back(std::move(m));
  }
}

Registry Registry::from_json(const nlohmann::json& j, const std::string& origin) {
  Registry r;
  r.merge(j, origin);
  return r;
}

Registry Registry::load_default() {
  Registry r = from_json(nlohmann::json::parse(builtin_registry_json()), "built-in registry");
  std::string user;
  if (const char* f = std::getenv("VG_REGISTRY_FILE"); f && *f) {
    user = f;
    if (!path_exists(user)) fail(ErrorCode::kFileNotFound, "VG_REGISTRY_FILE '" + user + "' does not exist");
  } else if (const char* home = std::getenv("HOME"); home && path_exists(std::string(home) + "/.config/visiongen/models.json")) {
    user = std::string(home) + "/.config/visiongen/models.json";
  }
  if (!user.empty()) {
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(read_file(user));
    } catch (const nlohmann::json::exception& e) {
      fail(ErrorCode::kCorruptFile, user + ": not valid JSON: " + e.what());
    }
    r.merge(j, user);
  }
  return r;
}

std::optional<ModelSpec> Registry::find(const std::string& q) const {
  auto lower = [](std::string s) {
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
  };
  const std::string lq = lower(q);
  for (const auto& m : models_) {
    if (lower(m.id) == lq) return m;
    for (const auto& r : m.ids)
      if (lower(r) == lq) return m;
  }
  return std::nullopt;
}

}  // namespace vg
