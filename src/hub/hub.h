// Hugging Face Hub downloads into the cache the official clients share
// (models--org--name/{blobs,snapshots/<commit>,refs}), as their protocol
// does: metadata HEAD on /resolve, blobs named by etag, relative symlinks,
// resume from blobs/<etag>.incomplete, retries with backoff honouring
// Retry-After, Authorization never sent to another host.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace vg::hub {

struct HubConfig {
  std::string endpoint;  // $HF_ENDPOINT or https://huggingface.co
  std::string token;     // $HF_TOKEN, $HF_TOKEN_PATH, $HF_HOME/token
  std::string cache_dir;
  bool offline = false;  // $HF_HUB_OFFLINE
  static HubConfig from_env();
};

struct PullOptions {
  std::string revision = "main";
  std::vector<std::string> include, exclude;  // globs on repo paths
  bool allow_unsafe = false, dry_run = false;
  std::string local_dir;     // write real files here (with .cache/huggingface metadata) instead of the cache
  std::string quantization;  // pick the GGUF file with this quant (e.g. Q4_K_M) among several
  std::vector<std::string> files;  // exactly these paths (pull files)
  std::string split;               // datasets: only this split's files (+ card and metadata)
};

struct PulledFile {
  std::string path, etag;
  uint64_t size = 0;
  bool downloaded = false;  // false = already in the cache
};

struct PullReport {
  std::string repo, commit, snapshot_dir;
  std::vector<PulledFile> files;
  std::vector<std::string> skipped_unsafe;
  // The Hub's scan flagged these (status not "safe", dangerous pickle
  // imports, or a virus): never fetched, not even with allow_unsafe.
  std::vector<std::string> refused_by_scan;
  std::vector<std::string> unscanned;  // no scan result (private or not yet scanned): "unknown", not "safe"
  uint64_t bytes_downloaded = 0;
};

// Throws VgException with a stable code (file_not_found for missing repos,
// revisions and entries, unauthorized for gated/private repos and bad
// tokens, busy when rate limits outlast the retries, io_error otherwise).
PullReport pull_model(const HubConfig& cfg, const std::string& repo, const PullOptions& opts);
// kind: model | dataset | space (cache folders models--, datasets--, spaces--).
PullReport pull_repo(const HubConfig& cfg, const std::string& kind, const std::string& repo, const PullOptions& opts);

struct SearchQuery {
  std::string kind = "model", text, author, sort, task, library;
  std::string language, size, sdk;  // datasets/models: language; datasets: size category; spaces: sdk
  std::vector<std::string> filters;
  int limit = 20;
};
nlohmann::json search(const HubConfig& cfg, const SearchQuery& q);  // the Hub's list items

// Repo facts with the safety class of every file ("safe", "unsafe", "other").
nlohmann::json repo_info(const HubConfig& cfg, const std::string& kind, const std::string& repo, const std::string& revision);
const char* safety_class(const std::string& path);
// "safe", "unknown" (no scan), or why the Hub's scan flags a file, from a
// tree/paths-info entry's securityFileStatus.
std::string scan_verdict(const nlohmann::json& entry);
// Whether a repo path belongs to a dataset split ("train" matches
// data/train-00000-of-00002.parquet, train/x.jsonl, train.csv, cfg/train/...).
bool in_split(const std::string& path, const std::string& split);

nlohmann::json whoami(const HubConfig& cfg);
// The token file the official clients share ($HF_TOKEN_PATH, $HF_HOME/token, ~/.cache/huggingface/token).
std::string token_path();
void save_token(const std::string& token);  // written atomically, mode 0600
bool delete_token();

// Files a pull skips unless allowed: pickles and executables.
bool unsafe_path(const std::string& path);

}  // namespace vg::hub
