#include "visiongen/manager.h"

#include <dlfcn.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <mutex>

#include "core/error.h"
#include "io/hf_cache.h"
#include "registry/registry.h"

namespace vg {

namespace fs = std::filesystem;

int cuda_device_count() {
  void* h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!h) return 0;
  using InitFn = int (*)(unsigned);
  using CountFn = int (*)(int*);
  auto init = reinterpret_cast<InitFn>(dlsym(h, "cuInit"));
  auto count = reinterpret_cast<CountFn>(dlsym(h, "cuDeviceGetCount"));
  int n = 0;
  if (!init || !count || init(0) != 0 || count(&n) != 0) n = 0;
  dlclose(h);
  return n;
}

struct VisionManager::Impl {
  ManagerOptions opts;
  mutable std::mutex mu;
  std::map<std::string, std::shared_ptr<Engine>> engines;
  std::map<std::string, double> cost;
  std::vector<std::string> lru;  // least recently used first
};

namespace {

// Weights are held in float32: about twice the size of 16-bit files.
double estimate_bytes(const std::string& path) {
  std::error_code ec;
  double total = 0;
  if (fs::is_regular_file(path, ec)) return static_cast<double>(fs::file_size(path, ec)) * 2;
  for (const auto& f : fs::recursive_directory_iterator(path, ec))
    if (f.path().extension() == ".safetensors") total += static_cast<double>(fs::file_size(f.path(), ec));
  return total * 2;
}

const EngineSpec* engine_for_task(const std::string& task) {
  for (const auto& e : engines())
    if (std::find(e.tasks.begin(), e.tasks.end(), task) != e.tasks.end()) return &e;
  return nullptr;
}

}  // namespace

VisionManager::VisionManager(const ManagerOptions& opts) : impl_(std::make_unique<Impl>()) { impl_->opts = opts; }
VisionManager::~VisionManager() = default;

Status VisionManager::load(const std::string& model) {
  auto r = guard([&]() -> int {
    const std::string path = resolve_model_reference(model);
    std::lock_guard<std::mutex> lock(impl_->mu);
    if (impl_->engines.count(model)) return 0;
    const double need = estimate_bytes(path);
    double used = 0;
    for (const auto& [k, c] : impl_->cost) used += c;
    while (impl_->opts.memory_budget_bytes > 0 && used + need > impl_->opts.memory_budget_bytes && !impl_->lru.empty()) {
      const std::string victim = impl_->lru.front();
      impl_->lru.erase(impl_->lru.begin());
      used -= impl_->cost[victim];
      impl_->cost.erase(victim);
      impl_->engines.erase(victim);
    }
    if (impl_->opts.memory_budget_bytes > 0 && need > impl_->opts.memory_budget_bytes)
      fail(ErrorCode::kOutOfMemory, "model '" + model + "' needs about " + std::to_string(static_cast<int>(need / 1e6)) +
                                        " MB, more than the memory budget");
    LoadOptions lo;
    lo.threads = impl_->opts.threads;
    auto e = Engine::load(path, lo);
    if (!e) throw VgException(e.error().code, e.error().message);
    impl_->engines[model] = std::shared_ptr<Engine>(std::move(*e));
    impl_->cost[model] = need;
    impl_->lru.push_back(model);
    return 0;
  });
  if (!r) return r.error();
  return Status();
}

Status VisionManager::unload(const std::string& model) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->engines.erase(model);
  impl_->cost.erase(model);
  impl_->lru.erase(std::remove(impl_->lru.begin(), impl_->lru.end(), model), impl_->lru.end());
  return Status();
}

std::vector<std::string> VisionManager::loaded() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->lru;
}

double VisionManager::memory_in_use() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  double used = 0;
  for (const auto& [k, c] : impl_->cost) used += c;
  return used;
}

Status VisionManager::validate(const TaskRequest& req) {
  static const char* kTasks[] = {"text_to_image", "image_to_image", "text_to_video", "image_to_video", "upscale"};
  if (std::find(std::begin(kTasks), std::end(kTasks), req.task) == std::end(kTasks))
    return Error{ErrorCode::kInvalidArgument, "task '" + req.task + "' is unknown; use text_to_image, image_to_image, text_to_video, image_to_video or upscale"};
  const std::string task = req.task == "image_to_image" && req.images.mask ? "inpaint" : req.task;
  const EngineSpec* eng = engine_for_task(task);
  if (!eng)
    return Error{ErrorCode::kCapabilityNotSupported,
                 "task " + task + " is not supported by any engine in this build; the cpu engine runs text_to_image, image_to_image and inpaint"};
  if (req.images.mask && !eng->mask)
    return Error{ErrorCode::kCapabilityNotSupported, "engine " + eng->name + " has no mask support; drop the mask"};
  if (req.device != "auto" && req.device != "cpu") {
    if (req.device == "cuda")
      return Error{ErrorCode::kCapabilityNotSupported, std::string("device cuda: ") +
                                                           (cuda_device_count() ? "no CUDA engine in this build yet" : "no CUDA driver found") +
                                                           "; use --device cpu"};
    return Error{ErrorCode::kInvalidArgument, "device '" + req.device + "' is unknown; use auto, cpu or cuda"};
  }
  if (task == "image_to_image" || task == "inpaint") {
    if (!req.images.init_image && req.params.init_image.empty())
      return Error{ErrorCode::kInvalidArgument, "image_to_image needs an init image"};
  }
  return validate_params(req.params);
}

Result<GenerateResult> VisionManager::run(const TaskRequest& req, const ProgressCallback& cb) {
  Status st = validate(req);
  if (!st) return st.error();
  st = load(req.model);
  if (!st) return st.error();
  std::shared_ptr<Engine> e;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    e = impl_->engines.at(req.model);
    impl_->lru.erase(std::remove(impl_->lru.begin(), impl_->lru.end(), req.model), impl_->lru.end());
    impl_->lru.push_back(req.model);
  }
  GenerateParams p = req.params;
  if (req.task == "text_to_image") p.init_image.clear(), p.mask.clear();
  if (req.images.init_image && p.init_image.empty()) p.init_image = "(image)";
  if (req.images.mask && p.mask.empty()) p.mask = "(mask)";
  return e->generate(p, req.images, cb);
}

}  // namespace vg
