// Applying LoRAs to a loaded model: resolves names, checks every LoRA against
// the model's layers before anything changes, and merges the updates into
// the layers' patch slots (each layer rebuilds its weight on next use).
// Setting a different list unmerges what is no longer requested; an empty
// list restores the loaded weights bit-exactly.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "lora/layer_registry.h"
#include "lora/lora_file.h"

namespace vg {

struct LoraSpec {
  std::string name;  // a path, or a name looked up in the LoRA folders
  float weight = 1.0f;
};

// "a:0.8,b:-0.4,path/x.safetensors" (weight 1 when left out).
std::vector<LoraSpec> parse_lora_list(const std::string& s);
// Removes A1111 <lora:name:weight> tags (weight 1 when left out; a third
// field, A1111's separate UNet weight, is ignored) and appends them to *out.
std::string extract_prompt_loras(const std::string& prompt, std::vector<LoraSpec>* out);
// `name` as a path when it exists, else name / name.safetensors in `dirs`
// and then in $VG_LORA_DIR (':'-separated). lora_not_found otherwise.
// confined (the server): only names inside the folders (subfolders allowed),
// never a path of its own, "..", or a symlink that leads out of its folder.
std::string resolve_lora_path(const std::string& name, const std::vector<std::string>& dirs, bool confined = false);
// `dirs` followed by the folders of $VG_LORA_DIR (':'-separated).
std::vector<std::string> lora_folders(const std::vector<std::string>& dirs);

struct LoraComponent {
  std::string name;  // "unet", "text_encoder", "text_encoder_2"
  std::shared_ptr<LayerRegistry> registry;
  // diffusers module name -> SGM/LDM module name (no "model.diffusion_model."
  // prefix, no ".weight"), for kohya SDXL keys; may be empty.
  std::function<std::string(const std::string&)> sgm_name;
};

struct LoraApplied {
  std::vector<std::string> warnings;
  // name and file, for the A1111 short hash (LoraFile::hash(); ready later)
  std::vector<std::pair<std::string, std::shared_ptr<const LoraFile>>> hashes;
};

class LoraManager {
 public:
  LoraManager(std::string family, std::vector<LoraComponent> components);
  void set_dirs(std::vector<std::string> dirs, bool confined = false) {
    dirs_ = std::move(dirs);
    confined_ = confined;
  }
  // true: LoRAs are applied at run time (the layers keep their loaded
  // weights and add x @ (scale * B @ A)^T to their output) instead of being
  // merged into the weights. Takes effect at the next set().
  void set_runtime(bool on) { runtime_ = on; }
  bool runtime() const { return runtime_; }
  // Throws lora_not_found / lora_incompatible / corrupt_file /
  // unsupported_format before changing any weight. No-op when unchanged.
  LoraApplied set(const std::vector<LoraSpec>& loras);
  // Changes whenever the effective weights change (prompt-embedding caches).
  std::string signature() const { return signature_; }

 private:
  struct Target {
    std::string component, layer;
    std::shared_ptr<LayerPatch> slot;
  };
  std::shared_ptr<const LoraFile> open(const std::string& path);
  const std::map<std::string, Target>& lookup();

  std::string family_;
  std::vector<LoraComponent> components_;
  std::vector<std::string> dirs_;
  bool confined_ = false;
  std::map<std::string, Target> lookup_;  // "component/underscored name" -> layer
  std::map<std::string, std::pair<std::string, std::shared_ptr<const LoraFile>>> files_;  // path -> (stamp, file)
  std::set<std::shared_ptr<LayerPatch>> patched_;
  std::string signature_;
  LoraApplied applied_;
  bool runtime_ = false;
};

}  // namespace vg
