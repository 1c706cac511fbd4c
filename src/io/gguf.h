// Memory-mapped GGUF (v2/v3) reader, validated as strictly as ggml's own:
// header, KV pairs (all value types, arrays), tensor infos (names, 1-4 dims,
// valid ggml types, whole blocks per row), alignment, offsets aligned and
// packed in order, data inside the file. Any defect is corrupt_file.
// Tensors are exposed under their PyTorch shape (ne reversed).
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "io/tensor_file.h"

namespace vg {

// GGUF KV value types.
enum class GgufValueType : uint32_t {
  kU8 = 0, kI8 = 1, kU16 = 2, kI16 = 3, kU32 = 4, kI32 = 5, kF32 = 6, kBool = 7,
  kString = 8, kArray = 9, kU64 = 10, kI64 = 11, kF64 = 12,
};

struct GgufValue {
  GgufValueType type = GgufValueType::kU8;
  GgufValueType elem_type = GgufValueType::kU8;  // arrays only
  // Scalars: unsigned types and bool in u, signed in i, floats in f, strings in s.
  uint64_t u = 0;
  int64_t i = 0;
  double f = 0;
  std::string s;
  std::vector<GgufValue> items;  // arrays
};

class GgufFile : public TensorFile {
 public:
  // Throws VgException (corrupt_file / file_not_found / io_error).
  static std::shared_ptr<GgufFile> open(const std::string& path);

  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  size_t data_offset() const { return data_offset_; }  // start of the data section in the file
  // KV pairs in file order.
  const std::vector<std::pair<std::string, GgufValue>>& kv() const { return kv_; }
  const GgufValue* find_kv(const std::string& key) const;
  // Typed getters: nullopt when the key is absent; corrupt_file when present
  // with an incompatible type (integers convert between widths when they fit).
  std::optional<int64_t> get_int(const std::string& key) const;
  std::optional<uint64_t> get_uint(const std::string& key) const;
  std::optional<double> get_float(const std::string& key) const;  // f32/f64 (and integers)
  std::optional<bool> get_bool(const std::string& key) const;
  std::optional<std::string> get_string(const std::string& key) const;
  std::optional<std::vector<int64_t>> get_int_array(const std::string& key) const;
  std::optional<std::vector<double>> get_float_array(const std::string& key) const;
  std::optional<std::vector<std::string>> get_string_array(const std::string& key) const;

 private:
  GgufFile() = default;
  [[noreturn]] void bad_type(const std::string& key, const char* wanted) const;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  size_t data_offset_ = 0;
  std::vector<std::pair<std::string, GgufValue>> kv_;
};

const char* gguf_value_type_name(GgufValueType t);

}  // namespace vg
