// Helpers for tests that compare against ../shared/fixtures.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <sys/wait.h>

#include <array>
#include <functional>
#include <map>
#include <cstdio>
#include <filesystem>
#include <regex>
#include <string>

#include "io/atomic_file.h"

#include "core/error.h"
#include "core/tensor.h"
#include "io/safetensors.h"
#include "visiongen/visiongen.h"

namespace vg::test {

inline std::string fixtures() { return VG_FIXTURES_DIR; }

// AddressSanitizer builds (scripts/sanitize-test.sh): memory figures there
// measure the sanitizer's shadow and quarantine, not visiongen.
constexpr bool under_asan() {
#if defined(__SANITIZE_ADDRESS__)
  return true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
  return true;
#else
  return false;
#endif
#else
  return false;
#endif
}
inline std::string tiny() { return fixtures() + "/sd1-tiny"; }
inline std::string tiny_model() { return tiny() + "/models/sd1-tiny"; }

// A fixture set's manifest.json (e.g. "flux-tiny"), Python's NaN/Infinity
// literals turned into null; parsed once per set.
inline const nlohmann::json& fixture_manifest(const std::string& fixture) {
  static std::map<std::string, nlohmann::json> cache;
  auto it = cache.find(fixture);
  if (it == cache.end()) {
    const std::string text = std::regex_replace(read_file(fixtures() + "/" + fixture + "/manifest.json"),
                                                std::regex(R"((-?Infinity|NaN)(?=[,\s\]}]))"), "null");
    it = cache.emplace(fixture, nlohmann::json::parse(text)).first;
  }
  return it->second;
}
inline const nlohmann::json& manifest() { return fixture_manifest("sd1-tiny"); }

// The code of the VgException `fn` throws (kOk when it throws none).
inline ErrorCode code_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const VgException& e) {
    return e.code();
  }
  return ErrorCode::kOk;
}

inline double max_abs(const float* a, int64_t n) {
  double m = 0;
  for (int64_t i = 0; i < n; ++i) m = std::max(m, static_cast<double>(std::fabs(a[i])));
  return m;
}
inline double max_abs_diff(const float* a, const float* b, int64_t n) {
  double m = 0;
  for (int64_t i = 0; i < n; ++i) m = std::max(m, static_cast<double>(std::fabs(a[i] - b[i])));
  return m;
}
// max|a-ref| / max|ref|
// An RGB8 image as [1, 3, H, W] in [0, 1] (diffusers' output layout).
inline Tensor image01(const Image& img) {
  Tensor t({1, 3, img.height, img.width});
  for (int c = 0; c < 3; ++c)
    for (int i = 0; i < img.width * img.height; ++i) t.data()[c * img.width * img.height + i] = img.pixels[i * 3 + c] / 255.0f;
  return t;
}

inline double rel_err(const Tensor& a, const Tensor& ref) {
  EXPECT_EQ(a.numel(), ref.numel());
  return max_abs_diff(a.data(), ref.data(), std::min(a.numel(), ref.numel())) /
         std::max(1e-30, max_abs(ref.data(), ref.numel()));
}
// Fraction of values within tol.
inline double frac_within(const Tensor& a, const Tensor& ref, double tol) {
  int64_t ok = 0;
  for (int64_t i = 0; i < ref.numel(); ++i) ok += std::fabs(a.data()[i] - ref.data()[i]) <= tol;
  return static_cast<double>(ok) / ref.numel();
}

// Runs the real `visiongen` binary with `args` (shell syntax), stderr merged.
struct CliResult {
  int code;
  std::string out;
};
// The seed of a manifest's "torch.Generator('cpu').manual_seed(N)" string.
inline int64_t manual_seed_of(const std::string& gen) {
  const auto a = gen.find("manual_seed(") + 12;
  return std::stoll(gen.substr(a, gen.find(')', a) - a));
}

inline CliResult run_cli(const std::string& args) {
  FILE* p = popen((std::string(VG_CLI_PATH) + " " + args + " 2>&1").c_str(), "r");
  std::string out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  const int st = pclose(p);
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
}

// True once process `pid` holds a file open inside `dir`: an output being
// written, named or not (O_TMPFILE), found in /proc/PID/fd.
inline bool writes_into(pid_t pid, const std::string& dir) {
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec)) {
    const std::string target = std::filesystem::read_symlink(e.path(), ec).string();
    if (!ec && target.rfind(dir + "/", 0) == 0) return true;
  }
  return false;
}

}  // namespace vg::test
