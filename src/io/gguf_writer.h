// GGUF v3 writer, byte-compatible with ggml's gguf_write_to_file: header, KV
// pairs in the given order, tensor infos in data order, zero padding to the
// alignment after the infos and after every tensor, packed offsets.
// The file appears atomically (temp file beside it, fsync, rename); on any
// error (disk full, a tensor producer throwing) the temp file is removed.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "io/gguf.h"

namespace vg {

struct GgufTensorToWrite {
  std::string name;
  int ggml_type = 0;
  std::vector<int64_t> ne;  // ggml order: ne[0] innermost (PyTorch shape reversed), 1-4 dims
  // Writes exactly gguf_tensor_bytes(*this) bytes to dst; called once, in file
  // order, so a converter can quantise one tensor at a time.
  std::function<void(uint8_t* dst)> fill;
};

size_t gguf_tensor_bytes(const GgufTensorToWrite& t);

// Writes `path`. alignment: a power of two; other than 32 it is recorded as
// the general.alignment KV (as ggml requires). Throws invalid_argument for
// a malformed tensor list, io_error for write failures.
void write_gguf(const std::string& path, const std::vector<std::pair<std::string, GgufValue>>& kv,
                const std::vector<GgufTensorToWrite>& tensors, uint64_t alignment = 32);

// Convenience constructors for KV values.
GgufValue gguf_string(const std::string& s);
GgufValue gguf_u32(uint32_t v);

}  // namespace vg
