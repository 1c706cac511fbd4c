#include "server/model_pool.h"

#include <algorithm>
#include <filesystem>

#include "core/error.h"
#include "io/confined_path.h"

namespace vg::server {

namespace fs = std::filesystem;

namespace {

std::string stem_of(const std::string& path) {
  fs::path p(path);
  while (!p.empty() && p.filename().empty()) p = p.parent_path();
  return p.extension() == ".safetensors" ? p.stem().string() : p.filename().string();
}

bool is_model(const fs::path& p) {
  std::error_code ec;
  if (fs::is_directory(p, ec)) return fs::exists(p / "model_index.json", ec);
  return p.extension() == ".safetensors" && fs::is_regular_file(p, ec);
}

}  // namespace

bool safe_model_name(const std::string& id) { return id.size() <= 200 && is_plain_name(id); }

ModelPool::ModelPool(std::string default_path, std::vector<std::string> dirs, LoadOptions load, LoadOptions components)
    : default_path_(std::move(default_path)), dirs_(std::move(dirs)), load_(std::move(load)), components_(std::move(components)) {
  if (!default_path_.empty()) default_id_ = stem_of(default_path_);
}

std::vector<ModelEntry> ModelPool::list() const {
  std::vector<ModelEntry> out;
  if (!default_path_.empty()) out.push_back({default_id_, default_path_});
  for (const auto& d : dirs_) {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(d, ec)) {
      // symlinks that leave the directory are not followed
      if (e.is_symlink(ec) && !stays_inside(e.path().string(), d)) continue;
      if (!is_model(e.path())) continue;
      const std::string id = stem_of(e.path().string());
      if (std::none_of(out.begin(), out.end(), [&](const ModelEntry& m) { return m.id == id; }))
        out.push_back({id, e.path().string()});
    }
  }
  return out;
}

ModelEntry ModelPool::resolve(const std::string& id_in) const {
  const std::string id = id_in.empty() ? default_id_ : id_in;
  if (id.empty()) fail(ErrorCode::kInvalidArgument, "no model given and the server has no default model; pass \"model\"");
  if (!safe_model_name(id))
    fail(ErrorCode::kInvalidArgument, "model '" + id_in + "' is not a plain model name (no paths, no '..'); see GET /v1/models");
  for (const auto& m : list())
    if (m.id == id) return m;
  fail(ErrorCode::kUnknownModel, "unknown model '" + id + "'; see GET /v1/models for the models this server has");
}

Result<std::shared_ptr<Engine>> ModelPool::acquire(const std::string& id) {
  auto entry = guard([&] { return resolve(id); });
  if (!entry) return entry.error();
  std::lock_guard<std::mutex> lock(mu_);
  auto it = engines_.find(entry->id);
  if (it == engines_.end()) {
    LoadOptions lo = load_;
    if (entry->path == default_path_) {  // the serve flags' component files belong to -m
      lo.transformer_file = components_.transformer_file;
      lo.text_encoder = components_.text_encoder;
      lo.text_encoder_2 = components_.text_encoder_2;
      lo.text_encoder_3 = components_.text_encoder_3;
      lo.clip_l = components_.clip_l;
      lo.clip_g = components_.clip_g;
      lo.t5 = components_.t5;
      lo.vae_file = components_.vae_file;
      lo.config_dir = components_.config_dir;
      lo.no_t5 = components_.no_t5;
    }
    auto e = Engine::load(entry->path, lo);
    if (!e) return e.error();
    constexpr size_t kKeep = 2;
    while (engines_.size() >= kKeep && !lru_.empty()) {
      engines_.erase(lru_.front());
      lru_.erase(lru_.begin());
    }
    it = engines_.emplace(entry->id, std::shared_ptr<Engine>(std::move(*e))).first;
  }
  lru_.erase(std::remove(lru_.begin(), lru_.end(), entry->id), lru_.end());
  lru_.push_back(entry->id);
  return it->second;
}

std::shared_ptr<Engine> ModelPool::peek(const std::string& id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = engines_.find(id);
  return it == engines_.end() ? nullptr : it->second;
}

Status ModelPool::unload(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  engines_.erase(id);
  lru_.erase(std::remove(lru_.begin(), lru_.end(), id), lru_.end());
  return Status();
}

std::vector<std::string> ModelPool::loaded() const {
  std::lock_guard<std::mutex> lock(mu_);
  return lru_;
}

}  // namespace vg::server
