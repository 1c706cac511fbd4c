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

const EngineSpec* engine_for_task(const std::vector<EngineSpec>& list, const std::string& task) {
  for (const auto& e : list)
    if (std::find(e.tasks.begin(), e.tasks.end(), task) != e.tasks.end()) return &e;
  return nullptr;
}

std::string join_tasks(const std::vector<EngineSpec>& list) {
  std::vector<std::string> all;
  for (const auto& e : list)
    for (const auto& t : e.tasks)
      if (std::find(all.begin(), all.end(), t) == all.end()) all.push_back(t);
  if (all.empty()) return "nothing";
  std::string s;
  for (size_t i = 0; i < all.size(); ++i) s += (i ? (i + 1 == all.size() ? " and " : ", ") : "") + all[i];
  return s;
}

}  // namespace

VisionManager::VisionManager(const ManagerOptions& opts) : impl_(std::make_unique<Impl>()) {
  impl_->opts = opts;
  if (impl_->opts.engines.empty()) impl_->opts.engines = builtin_engines();
}

const std::vector<EngineCapabilities>& VisionManager::engines() const { return impl_->opts.engines; }
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
  static const char* kTasks[] = {"auto", "text_to_image", "image_to_image", "inpaint", "text_to_video", "image_to_video", "upscale"};
  const std::string asked = req.task.empty() || req.task == "auto" ? req.params.task : req.task;
  if (std::find(std::begin(kTasks), std::end(kTasks), asked) == std::end(kTasks))
    return Error{ErrorCode::kInvalidArgument, "task '" + asked + "' is unknown; use text_to_image, image_to_image, text_to_video, image_to_video or upscale"};
  const bool has_mask = req.images.mask || !req.params.mask.empty();
  const bool has_image = req.images.init_image || !req.params.init_image.empty();
  std::string task = asked;
  if (task == "auto" || task.empty()) task = has_image ? "image_to_image" : "text_to_image";
  if (task == "image_to_image" && has_mask) task = "inpaint";
  const auto& list = impl_->opts.engines;
  // A masked image_to_image falls back to an engine that can do it when the
  // first engine listing image_to_image cannot take a mask.
  const EngineSpec* eng = engine_for_task(list, task);
  if (!eng && task == "inpaint") eng = engine_for_task(list, "image_to_image");
  if (!eng)
    return Error{ErrorCode::kCapabilityNotSupported,
                 "task " + task + " is not supported by any engine in this build; the engines here run " + join_tasks(list)};
  const bool video = task == "text_to_video" || task == "image_to_video";
  if (video && req.params.frames > eng->max_frames && eng->max_frames > 0)
    return Error{ErrorCode::kInvalidArgument, std::to_string(req.params.frames) + " frames is above engine " + eng->name +
                                                  "'s limit of " + std::to_string(eng->max_frames) + "; ask for fewer"};
  if (video && (req.params.width % 16 || req.params.height % 16))
    return Error{ErrorCode::kInvalidArgument, "video sizes must be multiples of 16 (" + std::to_string(eng->size_multiple) +
                                                  " for Wan 2.2); got " + std::to_string(req.params.width) + "x" +
                                                  std::to_string(req.params.height)};
  if (task == "image_to_video" && !has_image)
    return Error{ErrorCode::kInvalidArgument, "image_to_video needs the first frame as an init image"};
  if (has_mask && !eng->mask)
    return Error{ErrorCode::kCapabilityNotSupported, "engine " + eng->name + " runs image_to_image without mask support (no inpainting); drop the mask or use an engine with mask support"};
  if (!req.params.loras.empty() && !eng->lora)
    return Error{ErrorCode::kLoraUnsupported, "engine " + eng->name + " does not support LoRA; remove --lora (" + req.params.loras + ")"};
  for (const auto& [name, v] : {std::pair<const char*, int>{"width", req.params.width}, {"height", req.params.height}})
    if (v > eng->max_size)
      return Error{ErrorCode::kInvalidArgument, std::string(name) + " " + std::to_string(v) + " is above engine " + eng->name +
                                                    "'s limit of " + std::to_string(eng->max_size) + "; use at most " +
                                                    std::to_string(eng->max_size)};
  if (req.device != "auto" && req.device != "cpu") {
    if (req.device == "cuda")
      return Error{ErrorCode::kCapabilityNotSupported, std::string("device cuda: ") +
                                                           (cuda_device_count() ? "no CUDA engine in this build yet" : "no CUDA driver found") +
                                                           "; use --device cpu"};
    return Error{ErrorCode::kInvalidArgument, "device '" + req.device + "' is unknown; use auto, cpu or cuda"};
  }
  if ((task == "image_to_image" || task == "inpaint") && !has_image)
    return Error{ErrorCode::kInvalidArgument, "image_to_image needs an init image"};
  GenerateParams p = req.params;
  if (req.images.init_image && p.init_image.empty()) p.init_image = "(image)";
  if (req.images.mask && p.mask.empty()) p.mask = "(mask)";
  return validate_params(p);
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
  if (!req.task.empty() && req.task != "auto") p.task = req.task;
  if (req.task == "text_to_image") p.init_image.clear(), p.mask.clear();
  if (req.images.init_image && p.init_image.empty()) p.init_image = "(image)";
  if (req.images.mask && p.mask.empty()) p.mask = "(mask)";
  return e->generate(p, req.images, cb);
}

}  // namespace vg
