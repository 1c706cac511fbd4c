#include "backend/cpu/bf16.h"
#include "io/weights.h"

#include <atomic>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"
#include "io/atomic_file.h"

namespace vg {

namespace fs = std::filesystem;

namespace {
thread_local bool t_dequant_blocks = false;
std::atomic<uint64_t> g_dequantized_bytes{0};
}  // namespace

uint64_t WeightStore::dequantized_bytes() { return g_dequantized_bytes.load(); }

ScopedDequantizeBlocks::ScopedDequantizeBlocks(bool on) : prev_(t_dequant_blocks) { t_dequant_blocks = on; }
ScopedDequantizeBlocks::~ScopedDequantizeBlocks() { t_dequant_blocks = prev_; }
bool ScopedDequantizeBlocks::current() { return t_dequant_blocks; }

void WeightStore::add_file(std::shared_ptr<TensorFile> file, const std::string& strip) {
  for (auto& [name, info] : file->tensors()) {
    if (!strip.empty()) {
      if (name.rfind(strip, 0) != 0) continue;
      entries_[name.substr(strip.size())] = &info;
    } else {
      entries_[name] = &info;
    }
  }
  files_.push_back(std::move(file));
}

void WeightStore::add_alias(const std::string& name, const TensorInfo* source) {
  entries_[name] = source;
}

const TensorInfo* WeightStore::find(const std::string& name) const {
  auto it = entries_.find(name);
  if (it != entries_.end()) {
    if (used_) {
      std::lock_guard<std::mutex> lock(used_->mu);
      used_->names.insert(name);
    }
    return it->second;
  }
  return resolver_ ? resolver_(name) : nullptr;
}

std::vector<std::string> WeightStore::unused_names() const {
  std::vector<std::string> out;
  if (!used_) return out;
  std::lock_guard<std::mutex> lock(used_->mu);
  for (const auto& [name, info] : entries_)
    if (!used_->names.count(name)) out.push_back(name);
  return out;
}

std::string WeightStore::describe() const {
  std::string s;
  for (auto& f : files_) s += (s.empty() ? "'" : ", '") + f->path() + "'";
  return s.empty() ? "(no files)" : s;
}

const TensorInfo* WeightStore::check(const std::string& name, const Shape& expected) const {
  const TensorInfo* ti = find(name);
  if (!ti) {
    if (synthetic_) {
      if (requests_ && !expected.empty()) (*requests_)[name] = expected;
      return nullptr;
    }
    fail(ErrorCode::kShapeMismatch, "weight '" + name + "' is missing from " + describe() +
                                        "; the weights do not match the model config");
  }
  // 1x1 convolutions and linears are interchangeable (old VAE attention).
  if (!expected.empty() && ti->shape != expected && shape_numel(ti->shape) != shape_numel(expected))
    fail(ErrorCode::kShapeMismatch, "weight '" + name + "' has shape " + shape_str(ti->shape) +
                                        " but the config needs " + shape_str(expected) +
                                        "; config.json and the weights disagree");
  return ti;
}

Tensor WeightStore::get(const std::string& name, const Shape& expected) const {
  if (synthetic_ && !find(name)) {
    Tensor t = Tensor::unpooled(expected);
    if (requests_) {  // untouched pages: no memory until someone reads them
      if (!expected.empty()) (*requests_)[name] = expected;
      return t;
    }
    const int64_t fan_in = expected.size() > 1 ? t.numel() / expected[0] : 1;
    const float scale = expected.size() > 1 ? 1.7f / std::sqrt(static_cast<float>(fan_in)) : 0.1f;
    // Seeded by the name, so a weight is the same whenever and however often
    // it is asked for (layers may convert theirs on first use, in any order).
    uint32_t x = seed_ * 0x9E3779B9u + 0x7F4A7C15u;
    for (char ch : name) x = (x ^ static_cast<uint8_t>(ch)) * 16777619u;  // FNV-1a style
    if (x == 0) x = 1;
    for (int64_t i = 0; i < t.numel(); ++i) {
      x ^= x << 13, x ^= x >> 17, x ^= x << 5;  // xorshift32
      const float u = static_cast<float>(x >> 8) * (1.0f / 16777216.0f) - 0.5f;
      t.data()[i] = (expected.size() == 1 && name.find("norm") != std::string::npos && name.find("weight") != std::string::npos)
                        ? 1.0f + u * 0.2f : u * scale;
    }
    return t;
  }
  const TensorInfo* ti = check(name, expected);
  const Shape shape = expected.empty() ? ti->shape : expected;
  // float32 as stored: used in place from the mapping (no copy, nothing to
  // convert); its pages leave this process's RSS when the last user drops it
  // (e.g. a convolution's plain weights after their reorder).
  if (ti->dtype == DType::kF32 && reinterpret_cast<uintptr_t>(ti->data) % alignof(float) == 0) {
    for (const auto& f : files_) {
      if (!f->contains(ti->data, ti->nbytes)) continue;
      auto* p = reinterpret_cast<float*>(const_cast<uint8_t*>(ti->data));
      const size_t n = ti->nbytes;
      return Tensor::wrap(shape, std::shared_ptr<float>(p, [f, n](float* q) { f->release_pages(q, n); }));
    }
  }
  Tensor t = Tensor::unpooled(shape);
  tensor_to_f32(*ti, t.data(), static_cast<size_t>(t.numel()));
  if (ti->dtype == DType::kQuant) g_dequantized_bytes += static_cast<uint64_t>(t.numel()) * sizeof(float);
  for (const auto& f : files_) f->release_pages(ti->data, ti->nbytes);
  return t;
}

std::vector<uint16_t> WeightStore::get_bf16(const std::string& name, const Shape& expected) const {
  const TensorInfo* ti = synthetic_ ? nullptr : find(name);
  if (!ti || (ti->dtype != DType::kF16 && ti->dtype != DType::kBF16) || shape_numel(ti->shape) != shape_numel(expected)) {
    const Tensor t = get(name, expected);  // synthetic, other dtypes, and the error messages
    std::vector<uint16_t> out(static_cast<size_t>(t.numel()));
    to_bf16(t.data(), out.data(), t.numel());
    return out;
  }
  std::vector<uint16_t> out(static_cast<size_t>(shape_numel(expected)));
  const auto* src = reinterpret_cast<const uint16_t*>(ti->data);
  if (ti->dtype == DType::kBF16) std::copy_n(src, out.size(), out.data());
  else f16_to_bf16(src, out.data(), static_cast<int64_t>(out.size()));
  for (const auto& f : files_) f->release_pages(ti->data, ti->nbytes);
  return out;
}

std::shared_ptr<const WeightStore> WeightStore::shared() const {
  if (!shared_) {
    auto copy = std::make_shared<WeightStore>(*this);
    copy->registry_.reset();  // the registry's slots hold this copy: no cycle
    copy->shared_.reset();
    shared_ = std::move(copy);
  }
  return shared_;
}

Tensor WeightStore::get_or_empty(const std::string& name) const {
  return has(name) ? get(name) : Tensor();
}

bool is_pickle_path(const std::string& path) {
  auto ext = fs::path(path).extension().string();
  return ext == ".ckpt" || ext == ".bin" || ext == ".pt" || ext == ".pth" || ext == ".pkl";
}

void refuse_pickle(const std::string& path) {
  fail(ErrorCode::kUnsupportedFormat,
       "'" + path + "' is a pickle file, which can run arbitrary code when loaded, so visiongen "
       "never opens it; use the model's .safetensors version (most Hugging Face repos have one) "
       "or convert it once with a trusted tool (e.g. diffusers' convert scripts) to .safetensors");
}

WeightStore open_component_weights(const std::string& dir, const std::string& component) {
  if (!is_directory(dir))
    fail(ErrorCode::kMissingComponent, "the model folder has no '" + component +
                                           "' component (missing " + dir + ")");
  static const char* kBases[] = {"diffusion_pytorch_model", "model"};
  WeightStore ws;
  for (const char* variant : {"", ".fp16"}) {
    for (const char* base : kBases) {
      std::string single = dir + "/" + base + variant + ".safetensors";
      if (path_exists(single)) {
        ws.add_file(SafetensorsFile::open(single));
        return ws;
      }
      std::string index = dir + "/" + base + variant + ".safetensors.index.json";
      if (path_exists(index)) {
        nlohmann::json j;
        try {
          j = nlohmann::json::parse(read_file(index));
        } catch (const nlohmann::json::exception& e) {
          fail(ErrorCode::kCorruptFile, "'" + index + "' is not valid JSON: " + e.what());
        }
        if (!j.contains("weight_map") || !j["weight_map"].is_object())
          fail(ErrorCode::kCorruptFile, "'" + index + "' has no weight_map");
        std::set<std::string> shards;
        for (auto& [k, v] : j["weight_map"].items()) {
          std::string shard = v.get<std::string>();
          if (shard.find("..") != std::string::npos || shard.find('/') != std::string::npos)
            fail(ErrorCode::kCorruptFile, "'" + index + "' names an unsafe shard path '" + shard + "'");
          shards.insert(shard);
        }
        for (auto& s : shards) ws.add_file(SafetensorsFile::open(dir + "/" + s));
        for (auto& [k, v] : j["weight_map"].items())
          if (!ws.has(k))
            fail(ErrorCode::kCorruptFile, "shard '" + v.get<std::string>() + "' lacks tensor '" + k +
                                              "' listed in '" + index + "'");
        return ws;
      }
    }
  }
  for (auto& e : fs::directory_iterator(dir))
    if (is_pickle_path(e.path().string())) refuse_pickle(e.path().string());
  fail(ErrorCode::kMissingComponent, "no .safetensors weights found in '" + dir + "'");
}

}  // namespace vg
