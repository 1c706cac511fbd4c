// Helpers to read diffusers config.json values that may be an int or a list.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/atomic_file.h"

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

}  // namespace vg
