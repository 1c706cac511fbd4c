// Memory-mapped safetensors reader. The whole header is validated (length,
// JSON, dtypes, shapes, offsets in range and non-overlapping, file length)
// before any tensor is touched, so corrupt files fail with a clear error.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/tensor.h"

namespace vg {

struct TensorInfo {
  std::string name;
  DType dtype = DType::kF32;
  Shape shape;
  const uint8_t* data = nullptr;
  size_t nbytes = 0;
};

class SafetensorsFile {
 public:
  // Throws VgException (corrupt_file / file_not_found / unsupported_format).
  static std::shared_ptr<SafetensorsFile> open(const std::string& path);
  ~SafetensorsFile();

  const std::string& path() const { return path_; }
  const std::map<std::string, TensorInfo>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  bool has(const std::string& name) const { return tensors_.count(name) != 0; }
  const TensorInfo& info(const std::string& name) const;
  // Converted to float32 (copy).
  Tensor load_f32(const std::string& name) const;
  // Drops this process's resident pages of [p, p+n) when they lie in this
  // file's mapping (the page cache keeps them; a later read faults them back):
  // weights converted to their compute copy stop counting twice in RSS.
  void release_pages(const void* p, size_t n) const;
  // [p, p+n) lies inside this file's mapping.
  bool contains(const void* p, size_t n) const {
    const auto* b = static_cast<const uint8_t*>(p);
    const auto* base = static_cast<const uint8_t*>(map_);
    return map_ && b >= base && b + n <= base + size_;
  }

 private:
  SafetensorsFile() = default;
  std::string path_;
  void* map_ = nullptr;
  size_t size_ = 0;
  std::map<std::string, TensorInfo> tensors_;
  std::map<std::string, std::string> metadata_;
};

// Writes tensors (float32 or int64 data) atomically (temp file + rename).
struct TensorToWrite {
  std::string name;
  DType dtype;
  Shape shape;
  const void* data;
};
void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace vg
