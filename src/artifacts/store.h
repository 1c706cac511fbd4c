// Content-addressed artifact store: results are files named by their sha256
// with a JSON sidecar holding everything about how they were made. Writes
// are atomic (temp file + rename, sidecar last), so a crash never leaves a
// visible half artifact, and concurrent writers of the same content end
// with one artifact.
#pragma once
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace vg {

struct MediaRef {
  std::string id;  // sha256 of the bytes
  std::string uri, mime, sha256;
  uint64_t bytes = 0;
  int width = 0, height = 0, frames = 1;
  double fps = 0;
  std::string created;  // ISO 8601 UTC
  nlohmann::json info = nlohmann::json::object();
  nlohmann::json to_json() const;
  static MediaRef from_json(const nlohmann::json& j);
};

class ArtifactStore {
 public:
  explicit ArtifactStore(std::string dir);  // created if missing
  MediaRef put(const std::string& bytes, const std::string& mime, int width, int height, nlohmann::json info,
               int frames = 1, double fps = 0);
  std::vector<MediaRef> list() const;  // complete artifacts only, oldest first
  std::optional<MediaRef> get(const std::string& id) const;
  std::optional<std::string> read(const std::string& id) const;
  bool remove(const std::string& id);
  // Removes leftovers of interrupted writes (temp files, blobs without sidecar).
  size_t clean_partial();
  const std::string& dir() const { return dir_; }

 private:
  std::string blob_path(const std::string& id, const std::string& mime) const;
  std::string dir_;
};

bool valid_artifact_id(const std::string& id);

}  // namespace vg
