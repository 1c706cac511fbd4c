// A memory-mapped file of named tensors (safetensors or GGUF): the common view
// the weight store and the checkpoint loaders use, whatever the format.
#pragma once
#include <map>
#include <memory>
#include <string>

#include "core/dtype.h"
#include "core/tensor.h"

namespace vg {

struct TensorInfo {
  std::string name;
  // Element type as stored. GGUF block-quantised tensors have kQuant and
  // their ggml type in ggml_type; plain GGUF types (F32/F16/BF16/ints) have
  // their DType here too, so plain-dtype code paths take them unchanged.
  DType dtype = DType::kF32;
  Shape shape;  // PyTorch order (GGUF ne reversed)
  const uint8_t* data = nullptr;
  size_t nbytes = 0;
  int ggml_type = -1;  // ggml type id for GGUF tensors, -1 otherwise
};

// Bytes of the first `elems` elements of `t` (whole rows for block types).
size_t tensor_bytes(const TensorInfo& t, int64_t elems);
// The first n elements of t, decoded to float32 (dequantised for block types).
void tensor_to_f32(const TensorInfo& t, float* dst, size_t n);

class TensorFile {
 public:
  virtual ~TensorFile();
  TensorFile(const TensorFile&) = delete;
  TensorFile& operator=(const TensorFile&) = delete;

  const std::string& path() const { return path_; }
  const std::map<std::string, TensorInfo>& tensors() const { return tensors_; }
  // safetensors __metadata__; GGUF scalar KV pairs as text.
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

 protected:
  TensorFile() = default;
  // Opens and maps `path` (file_not_found / io_error).
  void map_file(const std::string& path);
  std::string path_;
  void* map_ = nullptr;
  size_t size_ = 0;
  std::map<std::string, TensorInfo> tensors_;
  std::map<std::string, std::string> metadata_;
};

// Opens a .safetensors or GGUF file, told apart by the GGUF magic.
std::shared_ptr<TensorFile> open_tensor_file(const std::string& path);
// The first bytes of `path` are the GGUF magic.
bool is_gguf_file(const std::string& path);

}  // namespace vg
