// Offline resolution of Hugging Face Hub references in the cache the
// official clients share ($HF_HUB_CACHE, $HF_HOME/hub, ~/.cache/huggingface/hub):
// models--org--name/refs/<revision> -> snapshots/<commit>. Nothing is ever
// downloaded here.
#pragma once
#include <optional>
#include <string>

namespace vg {

std::string hf_cache_dir();
// "org/name" or "org/name@revision" (no path on disk with that name).
bool looks_like_repo_ref(const std::string& ref);
// The snapshot folder, or nullopt when the cache does not hold it.
std::optional<std::string> hf_cached_snapshot(const std::string& ref);
// A path as is; otherwise a repo reference (or a registry id that names one)
// from the cache. Throws model_not_available_offline with the fetch command,
// or unknown_model.
std::string resolve_model_reference(const std::string& ref);

}  // namespace vg
