// vg::VisionManager: owns loaded models (load, unload, a memory budget with
// least-recently-used unloading), the capability registry and the engines,
// and runs tasks by name. Tasks no engine in this build runs are still known
// and rejected with capability_not_supported, never a crash.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "visiongen/visiongen.h"

namespace vg {

// What one engine of this build can do. `visiongen engines` prints these.
struct EngineCapabilities {
  std::string name;
  std::vector<std::string> families, tasks, weight_dtypes, devices;
  bool mask = false, lora = false;
  int size_multiple = 8, max_size = 4096, max_frames = 0;
};

// The engines compiled into this build.
const std::vector<EngineCapabilities>& builtin_engines();

struct ManagerOptions {
  int threads = 0;
  double memory_budget_bytes = 0;  // 0 = no limit; otherwise LRU models are unloaded to stay under it
  // Engines the manager may use; empty = builtin_engines(). A host can
  // narrow them (e.g. drop mask support or cap sizes) and requests outside
  // the narrowed capabilities are rejected before any work.
  std::vector<EngineCapabilities> engines;
};

struct TaskRequest {
  std::string task = "text_to_image";  // text_to_image | image_to_image | text_to_video | image_to_video | upscale
  std::string model;                   // path, org/name (HF cache) or registry id
  GenerateParams params;
  ImageInputs images;                  // image_to_image; a mask makes it inpainting
  std::string device = "auto";         // auto | cpu | cuda
};

class VisionManager {
 public:
  explicit VisionManager(const ManagerOptions& opts = {});
  ~VisionManager();
  Status load(const std::string& model);
  Status unload(const std::string& model);
  std::vector<std::string> loaded() const;
  // Estimated bytes held by loaded models.
  double memory_in_use() const;
  const std::vector<EngineCapabilities>& engines() const;
  Result<GenerateResult> run(const TaskRequest& req, const ProgressCallback& cb = nullptr);
  // Checks everything that can be checked without running (task, engine,
  // device, model availability, parameters).
  Status validate(const TaskRequest& req);
  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// CUDA devices found at run time (libcuda loaded with dlopen; no build-time
// dependency). 0 when there is no driver.
int cuda_device_count();

}  // namespace vg
