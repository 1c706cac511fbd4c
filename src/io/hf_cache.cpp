#include "io/hf_cache.h"

#include <cstdlib>
#include <regex>

#include "core/error.h"
#include "io/atomic_file.h"
#include "registry/registry.h"

namespace vg {

std::string hf_cache_dir() {
  if (const char* c = std::getenv("HF_HUB_CACHE"); c && *c) return c;
  if (const char* h = std::getenv("HF_HOME"); h && *h) return std::string(h) + "/hub";
  const char* home = std::getenv("HOME");
  return std::string(home ? home : "") + "/.cache/huggingface/hub";
}

bool looks_like_repo_ref(const std::string& ref) {
  static const std::regex re(R"(^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*(@[A-Za-z0-9._/-]+)?$)");
  return std::regex_match(ref, re) && ref.find("..") == std::string::npos;
}

std::optional<std::string> hf_cached_snapshot(const std::string& ref) {
  if (!looks_like_repo_ref(ref)) return std::nullopt;
  const size_t at = ref.find('@');
  const std::string repo = ref.substr(0, at), rev = at == std::string::npos ? "main" : ref.substr(at + 1);
  std::string folder = "models--" + repo;
  folder.replace(folder.find('/'), 1, "--");
  const std::string base = hf_cache_dir() + "/" + folder;
  std::string commit = rev;
  if (path_exists(base + "/refs/" + rev)) {
    commit = read_file(base + "/refs/" + rev);
    while (!commit.empty() && (commit.back() == '\n' || commit.back() == '\r' || commit.back() == ' ')) commit.pop_back();
  }
  static const std::regex hex(R"(^[0-9a-f]{40}$)");
  if (!std::regex_match(commit, hex)) return std::nullopt;
  const std::string snap = base + "/snapshots/" + commit;
  if (!is_directory(snap)) return std::nullopt;
  return snap;
}

std::string resolve_model_reference(const std::string& ref) {
  if (ref.empty() || path_exists(ref)) return ref;
  std::vector<std::string> repos;
  if (looks_like_repo_ref(ref)) {
    repos.push_back(ref);
  } else {
    auto reg = Registry::load_default();
    auto m = reg.find(ref);
    if (!m) return ref;  // not a reference: the loader reports the missing path
    repos = m->ids;
    if (repos.empty()) fail(ErrorCode::kUnknownModel, "registry entry '" + ref + "' names no Hub repository");
  }
  for (const auto& r : repos)
    if (auto snap = hf_cached_snapshot(r)) return *snap;
  const std::string repo = repos.front().substr(0, repos.front().find('@'));
  fail(ErrorCode::kModelNotAvailableOffline,
       "'" + ref + "' is not in the Hugging Face cache (" + hf_cache_dir() + ") and visiongen never downloads implicitly; fetch it with: visiongen hf pull model " +
           repo + " (or: hf download " + repo + "), or pass --allow-download");
}

}  // namespace vg
