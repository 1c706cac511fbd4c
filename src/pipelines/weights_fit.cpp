// Refuses a model whose weights cannot fit in memory before loading any of
// it, naming the precision or GGUF quantisation that would fit.
#include <cstdio>
#include <filesystem>
#include <map>

#include "core/error.h"
#include "core/memory.h"
#include "io/tensor_file.h"
#include "pipelines/family_engine.h"

namespace vg {

namespace fs = std::filesystem;

std::vector<std::string> weight_files(const std::string& path) {
  std::error_code ec;
  if (fs::is_regular_file(path, ec)) return {path};
  std::map<std::string, std::string> by_stem;
  for (const auto& e : fs::recursive_directory_iterator(path, ec)) {
    if (e.path().extension() != ".safetensors") continue;
    std::string key = e.path().string();
    const auto v = key.find(".fp16.");
    if (v != std::string::npos) key.erase(v, 5);
    auto& slot = by_stem[key];
    if (slot.empty() || e.path().string().find(".fp16.") == std::string::npos) slot = e.path().string();
  }
  std::vector<std::string> out;
  for (const auto& [k, f] : by_stem) out.push_back(f);
  return out;
}

namespace {

// One pass over the headers: float tensors (their in-memory size depends on
// the precision) and everything kept as stored.
struct WeightCensus {
  double float_elems = 0, fixed_bytes = 0;
  double bytes(bool bf16) const { return float_elems * (bf16 ? 2.0 : 4.0) + fixed_bytes; }
};

WeightCensus census(const std::string& path, bool quant_native) {
  WeightCensus c;
  for (const std::string& f : weight_files(path)) {
    std::shared_ptr<TensorFile> file;
    try {
      file = open_tensor_file(f);
    } catch (const std::exception&) {
      continue;  // the loader reports unreadable files with their own error
    }
    for (const auto& [name, t] : file->tensors()) {
      if (t.dtype == DType::kQuant && quant_native) c.fixed_bytes += static_cast<double>(t.nbytes);
      else if (t.dtype == DType::kF32 || t.dtype == DType::kF16 || t.dtype == DType::kBF16 || t.dtype == DType::kQuant)
        c.float_elems += static_cast<double>(shape_numel(t.shape));
      else
        c.fixed_bytes += static_cast<double>(t.nbytes);
    }
  }
  return c;
}

}  // namespace

double weight_bytes_in_memory(const std::string& path, bool bf16, bool quant_native) {
  return census(path, quant_native).bytes(bf16);
}

void check_weights_fit(const std::string& path, const std::string& precision, bool quant_native) {
  const double avail = memory_budget_bytes();
  const WeightCensus c = census(path, quant_native);
  const double need = c.bytes(precision == "bf16");
  if (avail <= 0 || need <= avail) return;
  const double f32 = c.bytes(false);
  std::string advice;
  if (precision != "bf16" && f32 / 2 <= avail) advice = "use --precision bf16 (about " + format_gb(f32 / 2) + ")";
  for (const auto& [type, bits] : {std::pair<const char*, double>{"q8_0", 8.5}, {"q6_k", 6.5625}, {"q5_k", 5.5}, {"q4_k", 4.5}}) {
    if (!advice.empty()) break;
    const double q = f32 * bits / 32.0;
    if (q <= avail)
      advice = std::string("convert it to a GGUF quantisation that fits: ") + type + " needs about " + format_gb(q) +
               " (visiongen convert '" + path + "' OUT.gguf --type " + type + ")";
  }
  if (advice.empty()) advice = "even a 4-bit GGUF (about " + format_gb(f32 * 4.5 / 32.0) + ") does not fit; free memory or use a larger machine";
  fail(ErrorCode::kOutOfMemory, "the weights of '" + path + "' need about " + format_gb(need) + " in " + precision + " and " +
                                    format_gb(avail) + " are available; " + advice);
}

}  // namespace vg
