// Reading and maintaining the shared Hugging Face cache without the network:
// list repos and revisions, verify blobs against their names (sha256 for LFS
// files, git's sha1 for the rest), remove a repo, prune least recently used.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace vg {

struct CachedRepo {
  std::string type, id;  // "model" | "dataset" | "space", "org/name"
  std::string path;
  uint64_t bytes = 0;    // blobs
  int64_t last_access = 0;
  std::vector<std::pair<std::string, std::string>> refs;  // (ref, commit)
  std::vector<std::string> snapshots;
  nlohmann::json to_json() const;
};

std::vector<CachedRepo> hf_cache_list(const std::string& cache_dir);
// Each blob whose content does not hash to its file name.
std::vector<std::string> hf_cache_verify(const std::string& cache_dir);
bool hf_cache_remove(const std::string& cache_dir, const std::string& repo_id);
// Removes least recently used repos until the cache is at most max_bytes; returns what was removed.
std::vector<std::string> hf_cache_prune(const std::string& cache_dir, uint64_t max_bytes);

}  // namespace vg
