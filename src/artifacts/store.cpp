#include "artifacts/store.h"

#include <algorithm>
#include <cstring>
#include <ctime>
#include <filesystem>

#include "core/hash.h"
#include "core/error.h"
#include "io/atomic_file.h"

namespace vg {

namespace fs = std::filesystem;

namespace {

std::string ext_for(const std::string& mime) {
  if (mime == "image/png") return ".png";
  if (mime == "image/jpeg") return ".jpg";
  if (mime == "image/webp") return ".webp";
  if (mime == "video/mp4") return ".mp4";
  if (mime == "video/webm") return ".webm";
  if (mime == "image/gif") return ".gif";
  return ".bin";
}

std::string now_iso() {
  std::time_t t = std::time(nullptr);
  char b[32];
  std::strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return b;
}

}  // namespace

bool valid_artifact_id(const std::string& id) {
  return id.size() == 64 && std::all_of(id.begin(), id.end(), [](char c) { return std::isxdigit(c) && !std::isupper(c); });
}

nlohmann::json MediaRef::to_json() const {
  return {{"id", id}, {"uri", uri}, {"mime", mime}, {"sha256", sha256}, {"bytes", bytes}, {"width", width},
          {"height", height}, {"frames", frames}, {"fps", fps}, {"created", created}, {"info", info}};
}

MediaRef MediaRef::from_json(const nlohmann::json& j) {
  MediaRef m;
  m.id = j.at("id");
  m.uri = j.value("uri", "");
  m.mime = j.value("mime", "");
  m.sha256 = j.value("sha256", m.id);
  m.bytes = j.value("bytes", 0ull);
  m.width = j.value("width", 0);
  m.height = j.value("height", 0);
  m.frames = j.value("frames", 1);
  m.fps = j.value("fps", 0.0);
  m.created = j.value("created", "");
  m.info = j.value("info", nlohmann::json::object());
  return m;
}

ArtifactStore::ArtifactStore(std::string dir) : dir_(std::move(dir)) {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec || !fs::is_directory(dir_)) fail(ErrorCode::kIoError, "cannot create the artifact folder '" + dir_ + "'");
}

std::string ArtifactStore::blob_path(const std::string& id, const std::string& mime) const {
  return dir_ + "/" + id.substr(0, 2) + "/" + id + ext_for(mime);
}

MediaRef ArtifactStore::put(const std::string& bytes, const std::string& mime, int width, int height, nlohmann::json info,
                            int frames, double fps) {
  MediaRef m;
  m.id = m.sha256 = sha256_hex(bytes);
  m.mime = mime;
  m.bytes = bytes.size();
  m.width = width;
  m.height = height;
  m.frames = frames;
  m.fps = fps;
  m.created = now_iso();
  m.info = std::move(info);
  const std::string blob = blob_path(m.id, mime);
  m.uri = "file://" + fs::absolute(blob).string();
  std::error_code ec;
  fs::create_directories(dir_ + "/" + m.id.substr(0, 2), ec);
  const std::string sidecar = dir_ + "/" + m.id.substr(0, 2) + "/" + m.id + ".json";
  if (path_exists(sidecar)) return *get(m.id);  // same content already stored
  write_file_atomic(blob, bytes);
  write_file_atomic(sidecar, m.to_json().dump(1));  // last: makes the artifact visible
  return m;
}

std::optional<MediaRef> ArtifactStore::get(const std::string& id) const {
  if (!valid_artifact_id(id)) return std::nullopt;
  const std::string sidecar = dir_ + "/" + id.substr(0, 2) + "/" + id + ".json";
  if (!path_exists(sidecar)) return std::nullopt;
  try {
    MediaRef m = MediaRef::from_json(nlohmann::json::parse(read_file(sidecar)));
    if (!path_exists(blob_path(id, m.mime))) return std::nullopt;
    return m;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

std::optional<std::string> ArtifactStore::read(const std::string& id) const {
  auto m = get(id);
  if (!m) return std::nullopt;
  return read_file(blob_path(id, m->mime));
}

std::vector<MediaRef> ArtifactStore::list() const {
  std::vector<MediaRef> out;
  std::error_code ec;
  for (const auto& sub : fs::directory_iterator(dir_, ec)) {
    if (!sub.is_directory()) continue;
    for (const auto& f : fs::directory_iterator(sub.path(), ec)) {
      const std::string name = f.path().filename().string();
      if (f.path().extension() != ".json" || name.find(".tmp-") != std::string::npos) continue;
      if (auto m = get(f.path().stem().string())) out.push_back(*m);
    }
  }
  std::sort(out.begin(), out.end(), [](const MediaRef& a, const MediaRef& b) { return a.created < b.created || (a.created == b.created && a.id < b.id); });
  return out;
}

bool ArtifactStore::remove(const std::string& id) {
  auto m = get(id);
  if (!m) return false;
  const std::string sidecar = dir_ + "/" + id.substr(0, 2) + "/" + id + ".json";
  std::error_code ec;
  fs::remove(sidecar, ec);  // first: the artifact disappears atomically
  fs::remove(blob_path(id, m->mime), ec);
  return true;
}

size_t ArtifactStore::clean_partial() {
  size_t removed = 0;
  std::error_code ec;
  for (const auto& sub : fs::directory_iterator(dir_, ec)) {
    if (!sub.is_directory()) continue;
    removed += remove_stale_temps(sub.path().string());  // of writers killed between naming and renaming
    for (const auto& f : fs::directory_iterator(sub.path(), ec)) {
      if (f.path().filename().string().find(".tmp-") != std::string::npos) continue;  // a live writer's
      const bool orphan = f.path().extension() != ".json" && !path_exists((sub.path() / (f.path().stem().string() + ".json")).string());
      if (orphan) removed += fs::remove(f.path(), ec) ? 1 : 0;
    }
  }
  return removed;
}

}  // namespace vg
