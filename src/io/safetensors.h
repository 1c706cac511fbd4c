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
#include "io/tensor_file.h"

namespace vg {

class SafetensorsFile : public TensorFile {
 public:
  // Throws VgException (corrupt_file / file_not_found / unsupported_format).
  static std::shared_ptr<SafetensorsFile> open(const std::string& path);

 private:
  SafetensorsFile() = default;
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
