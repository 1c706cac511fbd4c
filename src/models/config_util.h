// Helpers to read diffusers config.json values (an int or a list) and to
// infer configs from tensor shapes.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/atomic_file.h"
#include "io/weights.h"

namespace vg {

inline nlohmann::json read_json_file(const std::string& path, const std::string& what) {
  if (!path_exists(path))
    fail(ErrorCode::kMissingComponent, what + " config '" + path + "' is missing");
  try {
    return nlohmann::json::parse(read_file(path));
  } catch (const nlohmann::json::exception& e) {
    fail(ErrorCode::kCorruptFile, "'" + path + "' is not valid JSON: " + e.what());
  }
}

// int -> repeated n times; list -> must have n entries.
inline std::vector<int64_t> int_or_list(const nlohmann::json& j, const char* key, size_t n,
                                        int64_t fallback) {
  std::vector<int64_t> out;
  if (!j.contains(key) || j[key].is_null()) return std::vector<int64_t>(n, fallback);
  const auto& v = j[key];
  if (v.is_number_integer()) return std::vector<int64_t>(n, v.get<int64_t>());
  if (v.is_array()) {
    for (auto& e : v) {
      if (!e.is_number_integer()) fail(ErrorCode::kCorruptFile, std::string(key) + " must be integers");
      out.push_back(e.get<int64_t>());
    }
    if (out.size() != n)
      fail(ErrorCode::kCorruptFile, std::string(key) + " has " + std::to_string(out.size()) +
                                        " entries for " + std::to_string(n) + " blocks");
    return out;
  }
  fail(ErrorCode::kCorruptFile, std::string(key) + " must be an integer or a list");
}

// The shape of `name`, which must exist with `rank` dimensions (corrupt_file
// naming `what`, e.g. "FLUX", otherwise).
inline const Shape& weight_shape(const WeightStore& w, const std::string& name, size_t rank, const std::string& what) {
  const TensorInfo* t = w.find(name);
  if (!t)
    fail(ErrorCode::kCorruptFile, what + " weights " + w.describe() + " lack '" + name +
                                      "'; the file is incomplete or not a " + what + " transformer");
  if (t->shape.size() != rank)
    fail(ErrorCode::kCorruptFile, what + " weight '" + name + "' has shape " + shape_str(t->shape) + ", expected " +
                                      std::to_string(rank) + " dimensions; the file is damaged");
  return t->shape;
}

// The first dimension of `name` (rank `rank`); a synthetic (benchmark) store
// has every weight but no shapes, so there `synthetic` is returned.
inline int64_t weight_rows_or(const WeightStore& w, const std::string& name, size_t rank, const std::string& what,
                              int64_t synthetic) {
  if (!w.find(name) && w.has(name)) return synthetic;
  return weight_shape(w, name, rank, what)[0];
}

// How many of prefix + i + suffix exist for i = 0, 1, ... (stops at the first gap).
inline int64_t count_blocks(const WeightStore& w, const std::string& prefix, const std::string& suffix) {
  int64_t n = 0;
  while (w.find(prefix + std::to_string(n) + suffix)) ++n;
  return n;
}

// Head-dim split into three even RoPE axes as equal as possible, the spare
// pairs going to the spatial axes (1 and 2) first: 16 -> [4, 6, 6].
inline std::vector<int64_t> even_rope_axes(int64_t head_dim) {
  const int64_t pairs = head_dim / 2, base = pairs / 3, spare = pairs % 3;
  return {2 * base, 2 * (base + (spare > 0)), 2 * (base + (spare > 1))};
}

}  // namespace vg
