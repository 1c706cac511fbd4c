#include "cli/bench_lora.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <vector>

#include "backend/cpu/bf16.h"
#include "io/safetensors.h"
#include "lora/lora_manager.h"

namespace vg::cli {

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

bool ends_with(const std::string& s, const char* e) {
  const size_t n = std::strlen(e);
  return s.size() >= n && s.compare(s.size() - n, n, e) == 0;
}

// The linears real SDXL LoRAs train (kohya and diffusers' default targets).
bool lora_target(const std::string& name) {
  for (const char* s : {".to_q", ".to_k", ".to_v", ".to_out.0", ".proj_in", ".proj_out", ".ff.net.0.proj", ".ff.net.2"})
    if (ends_with(name, s)) return true;
  return false;
}

struct SyntheticLora {
  std::string path;
  int layers = 0;
  int64_t params = 0;
};

SyntheticLora write_lora(const LayerRegistry& reg, int rank, const std::string& path) {
  SyntheticLora out{path};
  std::vector<std::vector<uint16_t>> keep;
  std::vector<TensorToWrite> tensors;
  uint32_t x = 0x1234567u;
  auto fill = [&](int64_t rows, int64_t cols, float scale) -> const uint16_t* {
    std::vector<float> f(static_cast<size_t>(rows * cols));
    for (float& v : f) {
      x ^= x << 13, x ^= x >> 17, x ^= x << 5;
      v = (static_cast<float>(x >> 8) * (1.0f / 16777216.0f) - 0.5f) * scale;
    }
    keep.emplace_back(f.size());
    to_bf16(f.data(), keep.back().data(), static_cast<int64_t>(f.size()));
    out.params += rows * cols;
    return keep.back().data();
  };
  keep.reserve(reg.slots().size() * 2);
  for (const auto& [name, slot] : reg.slots()) {
    if (!lora_target(name) || slot->shape.size() < 2) continue;
    const int64_t o = slot->shape[0], in = shape_numel(slot->shape) / o;  // 1x1 convs (SD1 proj_in) as [out, in]
    const int64_t r = rank;
    const uint16_t* a = fill(r, in, 2.0f / std::sqrt(static_cast<float>(in)));
    const uint16_t* b = fill(o, r, 0.02f);
    tensors.push_back({"unet." + name + ".lora_A.weight", DType::kBF16, {r, in}, a});
    tensors.push_back({"unet." + name + ".lora_B.weight", DType::kBF16, {o, r}, b});
    ++out.layers;
  }
  // PEFT's LoraConfig as diffusers' save_lora_weights stores it; alpha = rank/2
  const std::string meta = "{\"unet.r\": " + std::to_string(rank) + ", \"unet.lora_alpha\": " + std::to_string(rank / 2.0) + "}";
  write_safetensors(path, tensors, {{"lora_adapter_metadata", meta}, {"format", "pt"}});
  return out;
}

Tensor keep_copy(const Tensor& t) {  // out of the step arena/pool, which the next call reuses
  Tensor c = Tensor::unpooled(t.shape());
  std::copy_n(t.data(), t.numel(), c.data());
  return c;
}

double max_rel(const Tensor& a, const Tensor& ref) {
  double d = 0, m = 0;
  for (int64_t i = 0; i < a.numel() && i < ref.numel(); ++i) {
    d = std::max(d, static_cast<double>(std::abs(a.data()[i] - ref.data()[i])));
    m = std::max(m, static_cast<double>(std::abs(ref.data()[i])));
  }
  return m > 0 ? d / m : d;
}

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.numel() == b.numel() && std::memcmp(a.data(), b.data(), static_cast<size_t>(a.numel()) * sizeof(float)) == 0;
}

}  // namespace

nlohmann::json bench_lora_merge(const std::shared_ptr<LayerRegistry>& reg, int rank, double plain_s,
                                const Tensor& plain_out, const std::function<Tensor()>& forward) {
  namespace fs = std::filesystem;
  const std::string path =
      (fs::temp_directory_path() / ("visiongen-bench-lora-" + std::to_string(getpid()) + ".safetensors")).string();
  nlohmann::json j;
  auto t = Clock::now();
  const SyntheticLora lora = write_lora(*reg, rank, path);
  j["rank"] = rank;
  j["layers"] = lora.layers;
  j["lora_params"] = lora.params;
  j["file_mb"] = static_cast<double>(fs::file_size(path)) / 1048576.0;
  j["write_s"] = since(t);

  LoraManager lm("bench", {{"unet", reg, nullptr}});
  t = Clock::now();
  LoraApplied applied = lm.set({{path, 1.0f}});  // load, check against every layer, queue the updates
  const double set_s = since(t);
  const std::string path_for_runtime = path;
  t = Clock::now();
  const Tensor merged_out = keep_copy(forward());  // each patched layer rebuilds its weight: original + B@A
  const double first_s = since(t);
  t = Clock::now();
  (void)forward();  // the same call with the merged weights in place: what the first one cost beyond it is the merge
  const double merged_forward_s = since(t);
  const double remat_s = std::max(0.0, first_s - merged_forward_s);

  // What the original-weight source costs alone (here it regenerates the
  // synthetic values; a real model converts its fp16 file pages instead).
  size_t patched = 0;
  t = Clock::now();
  for (const auto& [name, slot] : reg->slots())
    if (slot->patched()) {
      Tensor w;
      slot->original(&w, nullptr);
      ++patched;
    }
  const double source_s = since(t);

  t = Clock::now();
  lm.set({});
  const double unset_s = since(t);
  t = Clock::now();
  const Tensor unmerged_out = keep_copy(forward());
  const double unmerged_first_s = since(t);

  // Run time instead of merged: no weight is rewritten; each patched layer
  // adds scale * B(Ax) per call.
  lm.set_runtime(true);
  t = Clock::now();
  lm.set({{path_for_runtime, 1.0f}});
  const double rt_set_s = since(t);
  (void)forward();  // warm
  t = Clock::now();
  const Tensor rt_out = keep_copy(forward());
  const double rt_forward_s = since(t);
  lm.set({});
  lm.set_runtime(false);
  j["runtime_set_s"] = rt_set_s;
  j["runtime_forward_s"] = rt_forward_s;
  j["runtime_step_overhead"] = rt_forward_s / plain_s - 1.0;
  j["runtime_vs_merged_rel"] = max_rel(rt_out, merged_out);

  j["set_s"] = set_s;
  j["first_forward_s"] = first_s;
  j["plain_forward_s"] = plain_s;
  j["merged_forward_s"] = merged_forward_s;
  j["rematerialize_s"] = remat_s;
  j["merge_s"] = set_s + remat_s;  // what a request that adds the LoRA pays on top of its steps
  j["original_source_s"] = source_s;
  j["patched_layers"] = patched;
  j["warnings"] = applied.warnings;
  j["unmerge_s"] = unset_s + std::max(0.0, unmerged_first_s - plain_s);
  j["lora_changed_output"] = !same_bits(merged_out, plain_out);
  j["unmerge_restores_bitexact"] = same_bits(unmerged_out, plain_out);
  fs::remove(path);
  return j;
}

}  // namespace vg::cli
