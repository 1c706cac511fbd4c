#include "backend/cpu/precision_probe.h"

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "backend/cpu/bf16.h"
#include "backend/cpu/layers.h"
#include "core/error.h"
#include "io/atomic_file.h"

namespace vg {

namespace fs = std::filesystem;

std::string cpu_model_name() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) {
      const auto c = line.find(':');
      if (c != std::string::npos) return line.substr(line.find_first_not_of(" \t", c + 1));
    }
  return "unknown cpu";
}

std::string precision_cache_path() {
  const char* xdg = std::getenv("XDG_CACHE_HOME");
  const char* home = std::getenv("HOME");
  const std::string base = xdg && *xdg ? xdg : std::string(home && *home ? home : "/tmp") + "/.cache";
  return base + "/visiongen/precision.json";
}

std::vector<ProbeShape> probe_shapes(const std::string& arch) {
  // a 64^2-latent transformer block and resnet conv at the first and
  // deepest widths: the GEMM and convolution sizes that dominate a step
  if (arch == "dit")  // a FLUX/SD3.5-large-wide transformer block: attention and MLP linears
    return {{512, 3072, 3072}, {512, 3072, 12288}, {512, 12288, 3072}};
  if (arch == "sdxl")
    return {{2048, 640, 640}, {2048, 640, 5120}, {512, 1280, 1280}, {512, 5120, 1280}, {2, 640, 640, 32, 32, true}};
  return {{2048, 320, 320}, {2048, 320, 2560}, {512, 640, 640}, {512, 1280, 1280}, {2, 320, 320, 32, 32, true}};
}

namespace {

double time_shapes(const std::vector<ProbeShape>& shapes, bool bf16) {
  using Clock = std::chrono::steady_clock;
  double total = 0;
  uint32_t x = 0x9E3779B9u;
  auto fill = [&x](Tensor& t) {
    for (int64_t i = 0; i < t.numel(); ++i) {
      x ^= x << 13, x ^= x >> 17, x ^= x << 5;
      t.data()[i] = static_cast<float>(x >> 8) * (1.0f / 16777216.0f) - 0.5f;
    }
  };
  for (const ProbeShape& s : shapes) {
    Tensor w = Tensor::unpooled(s.conv ? Shape{s.out, s.in, 3, 3} : Shape{s.out, s.in});
    fill(w);
    Tensor in = Tensor::unpooled(s.conv ? Shape{s.rows_or_n, s.h, s.w, s.in} : Shape{s.rows_or_n, s.in});
    fill(in);
    auto best_of = [&](const auto& layer) {  // the first call also makes the primitive
      double best = 1e30;
      for (int rep = 0; rep < 3; ++rep) {
        const auto t = Clock::now();
        (void)layer.forward(in);
        if (rep) best = std::min(best, std::chrono::duration<double>(Clock::now() - t).count());
      }
      return best;
    };
    const double best = s.conv ? best_of(Conv2d(w, Tensor(), 1, 1, 1, 1, bf16)) : best_of(Linear(w, Tensor(), bf16));
    total += best;
  }
  return total;
}

}  // namespace

std::map<std::string, double> time_candidates(const std::vector<ProbeShape>& shapes) {
  std::map<std::string, double> out{{"fp32", time_shapes(shapes, false)}};
  out["bf16"] = time_shapes(shapes, true);  // emulated where the CPU has no bf16 dot product: then it loses
  return out;
}

std::string faster_candidate(const std::map<std::string, double>& seconds) {
  std::string best = "fp32";
  double best_s = seconds.count("fp32") ? seconds.at("fp32") : 1e30;
  for (const auto& [name, s] : seconds)
    if (s > 0 && s < best_s * 0.97) best = name, best_s = s;  // a clear win only: fp32 keeps exact parity
  return best;
}

PrecisionProbe choose_precision(const std::string& arch, const ProbeTimer& timer, const std::string& cache_file,
                                bool remeasure) {
  const std::string path = cache_file.empty() ? precision_cache_path() : cache_file;
  PrecisionProbe p;
  p.arch = arch;
  p.cpu = cpu_model_name();
  const std::string key = p.cpu + "|" + arch;
  nlohmann::json cache = nlohmann::json::object();
  std::error_code ec;
  if (fs::is_regular_file(path, ec)) {
    try {
      std::ifstream in(path);
      cache = nlohmann::json::parse(in);
      if (!cache.is_object()) cache = nlohmann::json::object();
    } catch (const std::exception&) {
      cache = nlohmann::json::object();  // a damaged cache is measured again and rewritten
    }
  }
  if (!remeasure && cache.contains(key) && cache[key].is_object() && cache[key].contains("choice")) {
    const std::string c = cache[key]["choice"].is_string() ? cache[key]["choice"].get<std::string>() : "";
    if (c == "fp32" || c == "bf16") {
      p.choice = c;
      p.cached = true;
      if (cache[key].contains("seconds") && cache[key]["seconds"].is_object())
        for (const auto& [n, v] : cache[key]["seconds"].items())
          if (v.is_number()) p.seconds[n] = v.get<double>();
      return p;
    }
  }
  p.seconds = timer ? timer(probe_shapes(arch)) : time_candidates(probe_shapes(arch));
  p.choice = faster_candidate(p.seconds);
  cache[key] = {{"choice", p.choice}, {"seconds", p.seconds}, {"arch", arch}, {"cpu", p.cpu}};
  try {
    fs::create_directories(fs::path(path).parent_path(), ec);
    write_file_atomic(path, cache.dump(1));
  } catch (const std::exception&) {
    // an unwritable cache only means measuring again next time
  }
  return p;
}

}  // namespace vg
