#include "io/safetensors.h"

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/atomic_file.h"

namespace vg {

namespace {

constexpr uint64_t kMaxHeader = 100ull << 20;  // 100 MiB, as the reference library

[[noreturn]] void corrupt(const std::string& path, const std::string& what) {
  fail(ErrorCode::kCorruptFile,
       "'" + path + "' is not a valid safetensors file: " + what +
           "; the file is damaged or incomplete, download it again");
}

}  // namespace

std::shared_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  std::shared_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->map_file(path);
  if (f->size_ < 8) corrupt(path, "it is only " + std::to_string(f->size_) + " bytes long");
  const auto* bytes = static_cast<const uint8_t*>(f->map_);
  uint64_t n = 0;
  std::memcpy(&n, bytes, 8);
  if (n > kMaxHeader) corrupt(path, "header length " + std::to_string(n) + " is implausible");
  if (8 + n > f->size_)
    corrupt(path, "header length " + std::to_string(n) + " runs past the end of the file (" +
                      std::to_string(f->size_) + " bytes)");
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(bytes + 8, bytes + 8 + n);
  } catch (const std::exception& e) {
    corrupt(path, std::string("header is not valid JSON (") + e.what() + ")");
  }
  if (!header.is_object()) corrupt(path, "header is not a JSON object");
  const uint8_t* data = bytes + 8 + n;
  const size_t data_size = f->size_ - 8 - n;
  std::vector<std::pair<size_t, size_t>> ranges;
  for (auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) corrupt(path, "__metadata__ is not an object");
      for (auto& [k, v] : entry.items()) {
        if (!v.is_string()) corrupt(path, "metadata value for '" + k + "' is not a string");
        f->metadata_[k] = v.get<std::string>();
      }
      continue;
    }
    if (!entry.is_object() || !entry.contains("dtype") || !entry.contains("shape") ||
        !entry.contains("data_offsets"))
      corrupt(path, "entry '" + name + "' lacks dtype/shape/data_offsets");
    TensorInfo info;
    info.name = name;
    if (!entry["dtype"].is_string() || !dtype_from_name(entry["dtype"].get<std::string>(), &info.dtype))
      corrupt(path, "tensor '" + name + "' has unknown dtype " + entry["dtype"].dump());
    const auto& shape = entry["shape"];
    if (!shape.is_array() || shape.size() > 8) corrupt(path, "tensor '" + name + "' has a bad shape");
    uint64_t numel = 1, nonzero = 1;  // the non-zero dims' product is bounded too (a 0 must not hide the rest)
    for (auto& d : shape) {
      if (!d.is_number_unsigned() && !(d.is_number_integer() && d.get<int64_t>() >= 0))
        corrupt(path, "tensor '" + name + "' has a negative or non-integer dimension");
      uint64_t v = d.get<uint64_t>();
      if (v > (1ull << 40) || (v > 0 && v > (1ull << 62) / nonzero))
        corrupt(path, "tensor '" + name + "' is impossibly large");
      numel *= v;
      if (v > 0) nonzero *= v;
      info.shape.push_back(static_cast<int64_t>(v));
    }
    const auto& off = entry["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() ||
        !off[1].is_number_unsigned())
      corrupt(path, "tensor '" + name + "' has malformed data_offsets");
    uint64_t b = off[0].get<uint64_t>(), e = off[1].get<uint64_t>();
    if (b > e || e > data_size)
      corrupt(path, "tensor '" + name + "' data_offsets [" + std::to_string(b) + "," +
                        std::to_string(e) + "] are outside the " + std::to_string(data_size) +
                        "-byte data section (truncated file?)");
    if (e - b != numel * dtype_size(info.dtype))
      corrupt(path, "tensor '" + name + "' has " + std::to_string(e - b) + " bytes but shape " +
                        shape_str(info.shape) + " of " + dtype_name(info.dtype) + " needs " +
                        std::to_string(numel * dtype_size(info.dtype)));
    info.data = data + b;
    info.nbytes = e - b;
    ranges.emplace_back(b, e);
    f->tensors_.emplace(name, std::move(info));
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i)
    if (ranges[i].first < ranges[i - 1].second) corrupt(path, "two tensors' data overlap");
  return f;
}

void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  size_t offset = 0;
  for (auto& t : tensors) {
    size_t nb = shape_numel(t.shape) * dtype_size(t.dtype);
    header[t.name] = {{"dtype", dtype_name(t.dtype)}, {"shape", t.shape},
                      {"data_offsets", {offset, offset + nb}}};
    offset += nb;
  }
  std::string h = header.dump();
  while (h.size() % 8) h.push_back(' ');
  std::string out(8, '\0');
  uint64_t n = h.size();
  std::memcpy(out.data(), &n, 8);
  out += h;
  // nlohmann sorts keys, which is also the order data was laid out in only if
  // names were sorted; offsets are explicit so any order is valid.
  for (auto& t : tensors)
    out.append(static_cast<const char*>(t.data), shape_numel(t.shape) * dtype_size(t.dtype));
  write_file_atomic(path, out);
}

}  // namespace vg
