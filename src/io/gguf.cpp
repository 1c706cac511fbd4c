#include "io/gguf.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <set>

#include "core/error.h"
#include "quant/ggml_types.h"

namespace vg {

namespace {

constexpr uint64_t kMaxElems = 1ull << 50;  // far beyond any real tensor, keeps byte counts from overflowing

[[noreturn]] void corrupt(const std::string& path, const std::string& what) {
  fail(ErrorCode::kCorruptFile, "'" + path + "' is not a valid GGUF file: " + what +
                                    "; the file is damaged, truncated or not written by a GGUF writer, "
                                    "download or convert it again");
}

// Bounds-checked little-endian cursor over the mapped file.
class Reader {
 public:
  Reader(const uint8_t* p, size_t n, const std::string& path) : p_(p), n_(n), path_(path) {}
  size_t pos() const { return pos_; }
  size_t left() const { return n_ - pos_; }
  template <typename T>
  T get(const char* what) {
    if (sizeof(T) > left()) corrupt(path_, std::string("the file ends inside ") + what + " (truncated)");
    T v;
    std::memcpy(&v, p_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string str(const std::string& what) {
    const uint64_t len = get<uint64_t>(what.c_str());
    if (len > left())
      corrupt(path_, "the length " + std::to_string(len) + " of " + what + " exceeds the rest of the file (" +
                         std::to_string(left()) + " bytes)");
    std::string s(reinterpret_cast<const char*>(p_ + pos_), static_cast<size_t>(len));
    pos_ += static_cast<size_t>(len);
    return s;
  }

 private:
  const uint8_t* p_;
  size_t n_, pos_ = 0;
  const std::string& path_;
};

// Smallest encoded size of one value of type t (arrays: their header).
size_t min_size(GgufValueType t) {
  switch (t) {
    case GgufValueType::kU8: case GgufValueType::kI8: case GgufValueType::kBool: return 1;
    case GgufValueType::kU16: case GgufValueType::kI16: return 2;
    case GgufValueType::kU32: case GgufValueType::kI32: case GgufValueType::kF32: return 4;
    case GgufValueType::kArray: return 12;
    default: return 8;  // u64, i64, f64, string length
  }
}

GgufValue read_value(Reader& r, GgufValueType t, const std::string& key, const std::string& path, bool in_array) {
  GgufValue v;
  v.type = t;
  const std::string what = "the value of key '" + key + "'";
  switch (t) {
    case GgufValueType::kU8: v.u = r.get<uint8_t>(what.c_str()); break;
    case GgufValueType::kI8: v.i = r.get<int8_t>(what.c_str()); break;
    case GgufValueType::kU16: v.u = r.get<uint16_t>(what.c_str()); break;
    case GgufValueType::kI16: v.i = r.get<int16_t>(what.c_str()); break;
    case GgufValueType::kU32: v.u = r.get<uint32_t>(what.c_str()); break;
    case GgufValueType::kI32: v.i = r.get<int32_t>(what.c_str()); break;
    case GgufValueType::kU64: v.u = r.get<uint64_t>(what.c_str()); break;
    case GgufValueType::kI64: v.i = r.get<int64_t>(what.c_str()); break;
    case GgufValueType::kF32: v.f = r.get<float>(what.c_str()); break;
    case GgufValueType::kF64: v.f = r.get<double>(what.c_str()); break;
    case GgufValueType::kBool:
      v.u = r.get<uint8_t>(what.c_str());
      if (v.u > 1) corrupt(path, "key '" + key + "' has bool value " + std::to_string(v.u) + " (must be 0 or 1)");
      break;
    case GgufValueType::kString: v.s = r.str("the string of key '" + key + "'"); break;
    case GgufValueType::kArray: {
      if (in_array) corrupt(path, "key '" + key + "' holds an array of arrays, which GGUF does not allow");
      const uint32_t et = r.get<uint32_t>(what.c_str());
      if (et > 12 || et == 9) corrupt(path, "key '" + key + "' has arrays of unknown value type " + std::to_string(et));
      v.elem_type = static_cast<GgufValueType>(et);
      const uint64_t count = r.get<uint64_t>(what.c_str());
      if (count > r.left() / min_size(v.elem_type))
        corrupt(path, "key '" + key + "' claims " + std::to_string(count) + " array elements, more than the file holds");
      v.items.reserve(static_cast<size_t>(count));
      for (uint64_t k = 0; k < count; ++k) v.items.push_back(read_value(r, v.elem_type, key, path, true));
      break;
    }
    default:
      corrupt(path, "key '" + key + "' has unknown value type " + std::to_string(static_cast<uint32_t>(t)));
  }
  return v;
}

std::string as_text(const GgufValue& v) {
  switch (v.type) {
    case GgufValueType::kString: return v.s;
    case GgufValueType::kBool: return v.u ? "true" : "false";
    case GgufValueType::kI8: case GgufValueType::kI16: case GgufValueType::kI32: case GgufValueType::kI64:
      return std::to_string(v.i);
    case GgufValueType::kF32: case GgufValueType::kF64: {
      char b[40];
      std::snprintf(b, sizeof b, "%.17g", v.f);
      return b;
    }
    default: return std::to_string(v.u);
  }
}

bool is_removed_type(uint32_t id) { return id == 4 || id == 5 || (id >= 31 && id <= 33) || (id >= 36 && id <= 38); }

DType plain_dtype(int id) {
  switch (id) {
    case kGgmlF32: return DType::kF32;
    case kGgmlF16: return DType::kF16;
    case kGgmlBF16: return DType::kBF16;
    case kGgmlF64: return DType::kF64;
    case kGgmlI8: return DType::kI8;
    case kGgmlI16: return DType::kI16;
    case kGgmlI32: return DType::kI32;
    case kGgmlI64: return DType::kI64;
    default: return DType::kQuant;
  }
}

uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

}  // namespace

const char* gguf_value_type_name(GgufValueType t) {
  static const char* kNames[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64"};
  const auto i = static_cast<uint32_t>(t);
  return i < 13 ? kNames[i] : "?";
}

std::shared_ptr<GgufFile> GgufFile::open(const std::string& path) {
  std::shared_ptr<GgufFile> f(new GgufFile());
  f->map_file(path);
  Reader r(static_cast<const uint8_t*>(f->map_), f->size_, path);
  char magic[4];
  for (char& c : magic) c = static_cast<char>(r.get<uint8_t>("the header"));
  if (std::memcmp(magic, "GGUF", 4) != 0) corrupt(path, "the magic bytes are not 'GGUF'");
  f->version_ = r.get<uint32_t>("the header");
  if (f->version_ == 1)
    corrupt(path, "it is GGUF version 1 (32-bit counts), which ggml no longer reads; convert it with a current tool");
  if (f->version_ == 0x02000000u || f->version_ == 0x03000000u)
    fail(ErrorCode::kUnsupportedFormat, "'" + path + "' is a big-endian GGUF file; use the little-endian release");
  if (f->version_ != 2 && f->version_ != 3)
    corrupt(path, "it claims GGUF version " + std::to_string(f->version_) + " (only 2 and 3 exist)");
  const uint64_t n_tensors = r.get<uint64_t>("the header"), n_kv = r.get<uint64_t>("the header");
  // Each KV pair takes >= 13 bytes and each tensor info >= 32: bound the counts by the file size.
  if (n_kv > r.left() / 13) corrupt(path, "it claims " + std::to_string(n_kv) + " KV pairs, more than the file holds");
  if (n_tensors > r.left() / 32)
    corrupt(path, "it claims " + std::to_string(n_tensors) + " tensors, more than the file holds");

  std::set<std::string> keys;
  for (uint64_t k = 0; k < n_kv; ++k) {
    std::string key = r.str("the name of KV pair " + std::to_string(k));
    if (!keys.insert(key).second) corrupt(path, "the KV key '" + key + "' appears twice");
    const uint32_t t = r.get<uint32_t>(("the type of key '" + key + "'").c_str());
    if (t > 12) corrupt(path, "key '" + key + "' has unknown value type " + std::to_string(t));
    GgufValue v = read_value(r, static_cast<GgufValueType>(t), key, path, false);
    if (v.type != GgufValueType::kArray) f->metadata_[key] = as_text(v);
    f->kv_.emplace_back(std::move(key), std::move(v));
  }
  if (const GgufValue* a = f->find_kv("general.alignment")) {
    if (a->type != GgufValueType::kU32)
      corrupt(path, std::string("general.alignment has type ") + gguf_value_type_name(a->type) + " (must be u32)");
    if (a->u == 0 || (a->u & (a->u - 1)) != 0)
      corrupt(path, "general.alignment is " + std::to_string(a->u) + ", not a power of two");
    f->alignment_ = a->u;
  }

  struct Pending {
    std::string name;
    TensorInfo info;
    uint64_t offset;
  };
  std::vector<Pending> infos;
  infos.reserve(static_cast<size_t>(n_tensors));
  std::set<std::string> names;
  for (uint64_t k = 0; k < n_tensors; ++k) {
    Pending p;
    p.name = r.str("the name of tensor " + std::to_string(k));
    const std::string what = "the info of tensor '" + p.name + "'";
    if (!names.insert(p.name).second) corrupt(path, "the tensor name '" + p.name + "' appears twice");
    const uint32_t n_dims = r.get<uint32_t>(what.c_str());
    if (n_dims < 1 || n_dims > 4)
      corrupt(path, "tensor '" + p.name + "' has " + std::to_string(n_dims) + " dimensions (GGUF allows 1 to 4)");
    std::vector<uint64_t> ne(n_dims);
    uint64_t numel = 1, nonzero = 1;  // the product of the non-zero dims is bounded too (a 0 must not hide the rest)
    for (auto& d : ne) {
      d = r.get<uint64_t>(what.c_str());
      if (d > kMaxElems || (d > 0 && nonzero > kMaxElems / d))
        corrupt(path, "tensor '" + p.name + "' is impossibly large");
      numel *= d;
      if (d > 0) nonzero *= d;
    }
    const uint32_t type = r.get<uint32_t>(what.c_str());
    const GgmlTypeInfo* ti = ggml_type_info(static_cast<int>(type));
    if (!ti) {
      if (is_removed_type(type))
        corrupt(path, "tensor '" + p.name + "' has ggml type " + std::to_string(type) + ", which ggml removed");
      if (type < 64)
        fail(ErrorCode::kUnsupportedFormat, "'" + path + "': tensor '" + p.name + "' has ggml type " +
                                                std::to_string(type) + ", which this visiongen does not know; "
                                                "use a file quantised as Q8_0, Q6_K, Q5_K, Q4_K or Q4_0");
      corrupt(path, "tensor '" + p.name + "' has invalid ggml type " + std::to_string(type));
    }
    if (ne[0] % static_cast<uint64_t>(ti->block_elems) != 0)
      corrupt(path, "tensor '" + p.name + "' of type " + ti->name + " has rows of " + std::to_string(ne[0]) +
                        " elements, not a multiple of its block size " + std::to_string(ti->block_elems));
    p.offset = r.get<uint64_t>(what.c_str());
    p.info.name = p.name;
    p.info.ggml_type = static_cast<int>(type);
    p.info.dtype = plain_dtype(ti->id);
    for (size_t d = n_dims; d-- > 0;) p.info.shape.push_back(static_cast<int64_t>(ne[d]));
    p.info.nbytes = ggml_row_bytes(ti->id, static_cast<int64_t>(ne[0])) * static_cast<size_t>(numel / std::max<uint64_t>(ne[0], 1));
    if (ne[0] == 0) p.info.nbytes = 0;
    infos.push_back(std::move(p));
  }
  f->data_offset_ = static_cast<size_t>(align_up(r.pos(), f->alignment_));
  if (!infos.empty() && f->data_offset_ > f->size_)
    corrupt(path, "the data section would start at byte " + std::to_string(f->data_offset_) +
                      ", beyond the end of the file (" + std::to_string(f->size_) + " bytes)");
  // As ggml: each tensor starts exactly where the previous one ends, rounded up to the alignment.
  uint64_t expected = 0;
  const uint64_t data_size = f->size_ - std::min<uint64_t>(f->size_, f->data_offset_);
  const auto* base = static_cast<const uint8_t*>(f->map_) + f->data_offset_;
  for (auto& p : infos) {
    if (p.offset != expected)
      corrupt(path, "tensor '" + p.name + "' has data offset " + std::to_string(p.offset) + ", expected " +
                        std::to_string(expected) + " (tensors must be packed in order, each aligned to " +
                        std::to_string(f->alignment_) + " bytes)");
    if (p.info.nbytes > data_size || p.offset > data_size - p.info.nbytes)
      corrupt(path, "tensor '" + p.name + "' (" + std::to_string(p.info.nbytes) + " bytes at data offset " +
                        std::to_string(p.offset) + ") runs past the end of the file (truncated?)");
    p.info.data = base + p.offset;
    expected = align_up(p.offset + p.info.nbytes, f->alignment_);
    // city96's SD/SDXL files store tensors flattened to rows of 256 and keep
    // the real shape in a KV pair; the data order is the same either way.
    if (f->find_kv("comfy.gguf.orig_shape." + p.name)) {
      const auto shape = f->get_int_array("comfy.gguf.orig_shape." + p.name);
      Shape s(shape->begin(), shape->end());
      // The product is checked step by step: dims from the file must not overflow it.
      uint64_t n = 1, nonzero = 1;
      bool sane = !s.empty() && s.size() <= 8;
      for (int64_t d : s) {
        const uint64_t u = static_cast<uint64_t>(d);
        sane = sane && d >= 0 && u <= kMaxElems && (u == 0 || nonzero <= kMaxElems / u);
        if (!sane) break;
        n *= u;
        if (u > 0) nonzero *= u;
      }
      if (!sane || n != static_cast<uint64_t>(shape_numel(p.info.shape)))
        corrupt(path, "comfy.gguf.orig_shape." + p.name + " does not match the tensor's " +
                          std::to_string(shape_numel(p.info.shape)) + " elements");
      p.info.shape = s;
    }
    f->tensors_.emplace(p.name, std::move(p.info));
  }
  return f;
}

const GgufValue* GgufFile::find_kv(const std::string& key) const {
  for (const auto& [k, v] : kv_)
    if (k == key) return &v;
  return nullptr;
}

void GgufFile::bad_type(const std::string& key, const char* wanted) const {
  const GgufValue* v = find_kv(key);
  fail(ErrorCode::kCorruptFile, "'" + path_ + "': GGUF key '" + key + "' has type " +
                                    gguf_value_type_name(v ? v->type : GgufValueType::kU8) + ", expected " + wanted +
                                    "; the file was written by an incompatible tool");
}

namespace {
bool is_unsigned(GgufValueType t) {
  return t == GgufValueType::kU8 || t == GgufValueType::kU16 || t == GgufValueType::kU32 || t == GgufValueType::kU64;
}
bool is_signed(GgufValueType t) {
  return t == GgufValueType::kI8 || t == GgufValueType::kI16 || t == GgufValueType::kI32 || t == GgufValueType::kI64;
}
bool is_float(GgufValueType t) { return t == GgufValueType::kF32 || t == GgufValueType::kF64; }
}  // namespace

std::optional<int64_t> GgufFile::get_int(const std::string& key) const {
  const GgufValue* v = find_kv(key);
  if (!v) return std::nullopt;
  if (is_signed(v->type)) return v->i;
  if (is_unsigned(v->type) && v->u <= static_cast<uint64_t>(INT64_MAX)) return static_cast<int64_t>(v->u);
  bad_type(key, "an integer (that fits in int64)");
}

std::optional<uint64_t> GgufFile::get_uint(const std::string& key) const {
  const GgufValue* v = find_kv(key);
  if (!v) return std::nullopt;
  if (is_unsigned(v->type)) return v->u;
  if (is_signed(v->type) && v->i >= 0) return static_cast<uint64_t>(v->i);
  bad_type(key, "a non-negative integer");
}

std::optional<double> GgufFile::get_float(const std::string& key) const {
  const GgufValue* v = find_kv(key);
  if (!v) return std::nullopt;
  if (is_float(v->type)) return v->f;
  if (is_signed(v->type)) return static_cast<double>(v->i);
  if (is_unsigned(v->type)) return static_cast<double>(v->u);
  bad_type(key, "a number");
}

std::optional<bool> GgufFile::get_bool(const std::string& key) const {
  const GgufValue* v = find_kv(key);
  if (!v) return std::nullopt;
  if (v->type != GgufValueType::kBool) bad_type(key, "bool");
  return v->u != 0;
}

std::optional<std::string> GgufFile::get_string(const std::string& key) const {
  const GgufValue* v = find_kv(key);
  if (!v) return std::nullopt;
  if (v->type != GgufValueType::kString) bad_type(key, "string");
  return v->s;
}

std::optional<std::vector<int64_t>> GgufFile::get_int_array(const std::string& key) const {
  const GgufValue* v = find_kv(key);
  if (!v) return std::nullopt;
  if (v->type != GgufValueType::kArray || (!v->items.empty() && !is_signed(v->elem_type) && !is_unsigned(v->elem_type)))
    bad_type(key, "an array of integers");
  std::vector<int64_t> out;
  for (const auto& e : v->items) {
    if (is_unsigned(e.type) && e.u > static_cast<uint64_t>(INT64_MAX)) bad_type(key, "an array of int64");
    out.push_back(is_signed(e.type) ? e.i : static_cast<int64_t>(e.u));
  }
  return out;
}

std::optional<std::vector<double>> GgufFile::get_float_array(const std::string& key) const {
  const GgufValue* v = find_kv(key);
  if (!v) return std::nullopt;
  if (v->type != GgufValueType::kArray || (!v->items.empty() && v->elem_type == GgufValueType::kString))
    bad_type(key, "an array of numbers");
  std::vector<double> out;
  for (const auto& e : v->items)
    out.push_back(is_float(e.type) ? e.f : is_signed(e.type) ? static_cast<double>(e.i) : static_cast<double>(e.u));
  return out;
}

std::optional<std::vector<std::string>> GgufFile::get_string_array(const std::string& key) const {
  const GgufValue* v = find_kv(key);
  if (!v) return std::nullopt;
  if (v->type != GgufValueType::kArray || (!v->items.empty() && v->elem_type != GgufValueType::kString))
    bad_type(key, "an array of strings");
  std::vector<std::string> out;
  for (const auto& e : v->items) out.push_back(e.s);
  return out;
}

}  // namespace vg
