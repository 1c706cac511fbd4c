#include "io/gguf_writer.h"


#include <cerrno>
#include <cstring>
#include <set>

#include "core/error.h"
#include "io/atomic_file.h"
#include "quant/ggml_types.h"

namespace vg {

namespace {

// Buffered writer on an AtomicFile: the GGUF appears only when complete.
class TempFile {
 public:
  explicit TempFile(const std::string& path) : file_(path) {}
  void put(const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    if (buf_.size() + n > kBuf) flush();
    if (n >= kBuf) return file_.write(b, n);
    buf_.insert(buf_.end(), b, b + n);
  }
  template <typename T>
  void put_le(T v) { put(&v, sizeof(T)); }
  void put_str(const std::string& s) {
    put_le<uint64_t>(s.size());
    put(s.data(), s.size());
  }
  void pad_to(uint64_t align) {
    static const uint8_t zeros[256] = {};
    for (uint64_t r = (align - written() % align) % align; r > 0;) {
      const size_t k = static_cast<size_t>(std::min<uint64_t>(r, sizeof(zeros)));
      put(zeros, k);
      r -= k;
    }
  }
  uint64_t written() const { return file_.written() + buf_.size(); }
  void commit() {
    flush();
    file_.commit();
  }

 private:
  static constexpr size_t kBuf = 1 << 20;
  void flush() {
    file_.write(buf_.data(), buf_.size());
    buf_.clear();
  }
  AtomicFile file_;
  std::vector<uint8_t> buf_;
};

void put_value(TempFile& f, const GgufValue& v, bool with_type) {
  if (with_type) f.put_le<uint32_t>(static_cast<uint32_t>(v.type));
  switch (v.type) {
    case GgufValueType::kU8: case GgufValueType::kBool: f.put_le<uint8_t>(static_cast<uint8_t>(v.u)); break;
    case GgufValueType::kI8: f.put_le<int8_t>(static_cast<int8_t>(v.i)); break;
    case GgufValueType::kU16: f.put_le<uint16_t>(static_cast<uint16_t>(v.u)); break;
    case GgufValueType::kI16: f.put_le<int16_t>(static_cast<int16_t>(v.i)); break;
    case GgufValueType::kU32: f.put_le<uint32_t>(static_cast<uint32_t>(v.u)); break;
    case GgufValueType::kI32: f.put_le<int32_t>(static_cast<int32_t>(v.i)); break;
    case GgufValueType::kU64: f.put_le<uint64_t>(v.u); break;
    case GgufValueType::kI64: f.put_le<int64_t>(v.i); break;
    case GgufValueType::kF32: f.put_le<float>(static_cast<float>(v.f)); break;
    case GgufValueType::kF64: f.put_le<double>(v.f); break;
    case GgufValueType::kString: f.put_str(v.s); break;
    case GgufValueType::kArray:
      if (v.elem_type == GgufValueType::kArray)
        fail(ErrorCode::kInvalidArgument, "GGUF arrays of arrays cannot be written");
      f.put_le<uint32_t>(static_cast<uint32_t>(v.elem_type));
      f.put_le<uint64_t>(v.items.size());
      for (const auto& it : v.items) {
        GgufValue e = it;
        e.type = v.elem_type;
        put_value(f, e, false);
      }
      break;
  }
}

void check(const std::vector<GgufTensorToWrite>& tensors, uint64_t alignment) {
  if (alignment == 0 || (alignment & (alignment - 1)) != 0)
    fail(ErrorCode::kInvalidArgument, "GGUF alignment " + std::to_string(alignment) + " is not a power of two");
  std::set<std::string> names;
  for (const auto& t : tensors) {
    const GgmlTypeInfo* info = ggml_type_info(t.ggml_type);
    if (!info) fail(ErrorCode::kInvalidArgument, "tensor '" + t.name + "': unknown ggml type");
    if (t.ne.empty() || t.ne.size() > 4)
      fail(ErrorCode::kInvalidArgument, "tensor '" + t.name + "' has " + std::to_string(t.ne.size()) +
                                            " dimensions; GGUF allows 1 to 4");
    for (int64_t d : t.ne)
      if (d <= 0) fail(ErrorCode::kInvalidArgument, "tensor '" + t.name + "' has an empty dimension");
    if (t.ne[0] % info->block_elems != 0)
      fail(ErrorCode::kInvalidArgument, "tensor '" + t.name + "': row of " + std::to_string(t.ne[0]) +
                                            " is not a multiple of the " + info->name + " block size");
    if (!names.insert(t.name).second) fail(ErrorCode::kInvalidArgument, "duplicate tensor name '" + t.name + "'");
    if (!t.fill) fail(ErrorCode::kInvalidArgument, "tensor '" + t.name + "' has no data");
  }
}

}  // namespace

size_t gguf_tensor_bytes(const GgufTensorToWrite& t) {
  size_t rows = 1;
  for (size_t i = 1; i < t.ne.size(); ++i) rows *= static_cast<size_t>(t.ne[i]);
  return ggml_row_bytes(t.ggml_type, t.ne[0]) * rows;
}

GgufValue gguf_string(const std::string& s) {
  GgufValue v;
  v.type = GgufValueType::kString;
  v.s = s;
  return v;
}

GgufValue gguf_u32(uint32_t x) {
  GgufValue v;
  v.type = GgufValueType::kU32;
  v.u = x;
  return v;
}

void write_gguf(const std::string& path, const std::vector<std::pair<std::string, GgufValue>>& kv_in,
                const std::vector<GgufTensorToWrite>& tensors, uint64_t alignment) {
  check(tensors, alignment);
  auto kv = kv_in;
  std::set<std::string> keys;
  for (const auto& [k, v] : kv)
    if (!keys.insert(k).second) fail(ErrorCode::kInvalidArgument, "duplicate GGUF key '" + k + "'");
  if (alignment != 32 && !keys.count("general.alignment"))
    kv.emplace_back("general.alignment", gguf_u32(static_cast<uint32_t>(alignment)));

  TempFile f(path);
  f.put("GGUF", 4);
  f.put_le<uint32_t>(3);
  f.put_le<uint64_t>(tensors.size());
  f.put_le<uint64_t>(kv.size());
  for (const auto& [k, v] : kv) {
    f.put_str(k);
    put_value(f, v, true);
  }
  uint64_t offset = 0;
  for (const auto& t : tensors) {
    f.put_str(t.name);
    f.put_le<uint32_t>(static_cast<uint32_t>(t.ne.size()));
    for (int64_t d : t.ne) f.put_le<uint64_t>(static_cast<uint64_t>(d));
    f.put_le<uint32_t>(static_cast<uint32_t>(t.ggml_type));
    f.put_le<uint64_t>(offset);
    offset += (gguf_tensor_bytes(t) + alignment - 1) / alignment * alignment;
  }
  f.pad_to(alignment);
  std::vector<uint8_t> buf;
  for (const auto& t : tensors) {
    buf.assign(gguf_tensor_bytes(t), 0);
    t.fill(buf.data());
    f.put(buf.data(), buf.size());
    f.pad_to(alignment);
  }
  f.commit();
}

}  // namespace vg
