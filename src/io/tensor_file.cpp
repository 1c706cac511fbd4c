#include "io/tensor_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "core/error.h"
#include "io/gguf.h"
#include "io/safetensors.h"
#include "quant/ggml_types.h"

namespace vg {

size_t tensor_bytes(const TensorInfo& t, int64_t elems) {
  if (t.ggml_type >= 0 && t.dtype == DType::kQuant) return ggml_row_bytes(t.ggml_type, elems);
  return static_cast<size_t>(elems) * dtype_size(t.dtype);
}

void tensor_to_f32(const TensorInfo& t, float* dst, size_t n) {
  if (t.dtype != DType::kQuant) return convert_to_f32(t.dtype, t.data, dst, n);
  // In chunks of whole blocks, in parallel (rows are whole blocks, so any
  // block boundary is a valid cut, whatever shape the tensor is shown in).
  const GgmlTypeInfo* ti = ggml_type_info(t.ggml_type);
  const int64_t total = static_cast<int64_t>(n);
  const int64_t chunk = ti ? ti->block_elems * std::max<int64_t>(1, 16384 / ti->block_elems) : total;
  if (!ti || total < (1 << 16) || total % ti->block_elems != 0)
    return dequantize_row(t.ggml_type, t.data, dst, total);
#pragma omp parallel for schedule(static)
  for (int64_t c0 = 0; c0 < total; c0 += chunk)
    dequantize_row(t.ggml_type, t.data + ggml_row_bytes(t.ggml_type, c0), dst + c0, std::min(chunk, total - c0));
}

void TensorFile::map_file(const std::string& path) {
  path_ = path;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT)
      fail(ErrorCode::kFileNotFound, "model file '" + path + "' does not exist; check the path");
    fail(ErrorCode::kIoError, "cannot open '" + path + "': " + std::strerror(errno));
  }
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    fail(ErrorCode::kIoError, "'" + path + "' is not a regular file");
  }
  size_ = static_cast<size_t>(st.st_size);
  if (size_ == 0) {
    ::close(fd);
    fail(ErrorCode::kCorruptFile, "'" + path + "' is empty; the download is incomplete, download it again");
  }
  // Private and writable: float32 weights are used in place, and a write
  // through one (none is intended) gets a private copy of that page instead
  // of a fault or a change to the file.
  map_ = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map_ == MAP_FAILED) {
    map_ = nullptr;
    fail(ErrorCode::kIoError, "cannot map '" + path + "' into memory: " + std::strerror(errno));
  }
}

TensorFile::~TensorFile() {
  if (map_) ::munmap(map_, size_);
}

void TensorFile::release_pages(const void* p, size_t n) const {
  const auto* base = static_cast<const uint8_t*>(map_);
  const auto* b = static_cast<const uint8_t*>(p);
  if (!map_ || b < base || b + n > base + size_) return;
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t lo = (reinterpret_cast<uintptr_t>(b) + page - 1) / page * page;
  const uintptr_t hi = (reinterpret_cast<uintptr_t>(b) + n) / page * page;
  if (hi > lo) ::madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_DONTNEED);
}

const TensorInfo& TensorFile::info(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end())
    fail(ErrorCode::kShapeMismatch, "tensor '" + name + "' is missing from '" + path_ +
                                        "'; the file does not match the model config");
  return it->second;
}

Tensor TensorFile::load_f32(const std::string& name) const {
  const TensorInfo& ti = info(name);
  Tensor t(ti.shape);
  tensor_to_f32(ti, t.data(), static_cast<size_t>(t.numel()));
  return t;
}

bool is_gguf_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char magic[4] = {};
  const bool ok = ::read(fd, magic, 4) == 4 && std::memcmp(magic, "GGUF", 4) == 0;
  ::close(fd);
  return ok;
}

std::shared_ptr<TensorFile> open_tensor_file(const std::string& path) {
  if (is_gguf_file(path)) return GgufFile::open(path);
  return SafetensorsFile::open(path);
}

}  // namespace vg
