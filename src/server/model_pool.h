// The models a server can run: a default model plus every diffusers folder
// and .safetensors checkpoint directly inside the configured directories.
// Names never resolve outside those places.
#pragma once
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "visiongen/visiongen.h"

namespace vg::server {

struct ModelEntry {
  std::string id;    // name clients use
  std::string path;  // folder or file
};

class ModelPool {
 public:
  // `components`: the component fields of LoadOptions (transformer_file,
  // text encoders, vae_file, config_dir, no_t5) for the default model only.
  ModelPool(std::string default_path, std::vector<std::string> dirs, LoadOptions load = {}, LoadOptions components = {});
  std::vector<ModelEntry> list() const;
  const std::string& default_id() const { return default_id_; }
  // "" = the default model. Throws invalid_argument / file_not_found with a sentence.
  ModelEntry resolve(const std::string& id) const;
  // Loads (or reuses) the engine; at most `keep` engines stay loaded (LRU).
  Result<std::shared_ptr<Engine>> acquire(const std::string& id);
  // The engine if `id` is loaded now (never loads); null otherwise.
  std::shared_ptr<Engine> peek(const std::string& id) const;
  Status unload(const std::string& id);
  std::vector<std::string> loaded() const;

 private:
  std::string default_path_, default_id_;
  std::vector<std::string> dirs_;
  LoadOptions load_, components_;
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<Engine>> engines_;
  std::vector<std::string> lru_;
};

// Model names are plain names: no path separators, no "..", not absolute.
bool safe_model_name(const std::string& id);

}  // namespace vg::server
