// A named view of weights spread over one or more tensor files (safetensors
// or GGUF; GGUF block types are dequantised when a layer asks for them). Models
// ask for tensors by their diffusers/transformers name; single-file LDM
// checkpoints are exposed under those names through a rename map.
#pragma once
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <memory>
#include <string>
#include <vector>

#include "io/safetensors.h"

namespace vg {

class LayerRegistry;

// While one is alive, WeightStores made on this thread start with
// set_dequantize_blocks(on) (LoadOptions::quant_compute = "dequant" reaches
// every loader this way).
class ScopedDequantizeBlocks {
 public:
  explicit ScopedDequantizeBlocks(bool on);
  ~ScopedDequantizeBlocks();
  ScopedDequantizeBlocks(const ScopedDequantizeBlocks&) = delete;
  ScopedDequantizeBlocks& operator=(const ScopedDequantizeBlocks&) = delete;
  static bool current();

 private:
  bool prev_;
};

class WeightStore {
 public:
  void add_file(std::shared_ptr<TensorFile> file, const std::string& strip_prefix = "");
  // Exposes `source` (a name already in the store's files) as `name`.
  void add_alias(const std::string& name, const TensorInfo* source);

  // Fallback lookup for names not stored directly (e.g. LDM renames). The
  // resolver may return tensors it owns; they must outlive the store.
  using Resolver = std::function<const TensorInfo*(const std::string&)>;
  void set_resolver(Resolver r) {
    resolver_ = std::move(r);
    shared_.reset();  // a shared copy made before would lack the new names
  }

  bool has(const std::string& name) const { return synthetic_ || find(name) != nullptr; }
  // Benchmark mode: every requested weight exists and is filled with small
  // pseudo-random values of the requested shape (no file needed).
  void make_synthetic(uint32_t seed) { synthetic_ = true; seed_ = seed; }
  // Synthetic mode only: note the name and shape of every weight asked for
  // (to write a synthetic model's files) and leave the values unfilled, so
  // building a full-size model costs address space, not memory.
  using Requests = std::map<std::string, Shape>;
  void record_requests(std::shared_ptr<Requests> r) { requests_ = std::move(r); }
  const TensorInfo* find(const std::string& name) const;
  // The entry for `name` after the checks get() makes (present; the shape
  // matches `expected` when given), without converting anything. nullptr in
  // benchmark (synthetic) mode.
  const TensorInfo* check(const std::string& name, const Shape& expected = {}) const;
  // Loads as float32 and checks the shape when `expected` is non-empty.
  Tensor get(const std::string& name, const Shape& expected = {}) const;
  Tensor get_or_empty(const std::string& name) const;
  // Loads as bf16 (for bf16 layers): f16, bf16 and f32 files convert straight
  // to bf16 without a float32 copy of the whole tensor.
  std::vector<uint16_t> get_bf16(const std::string& name, const Shape& expected) const;
  const std::map<std::string, const TensorInfo*>& entries() const { return entries_; }
  // A shared copy of this store (made on the first call), for layers that
  // convert their weights later: it keeps the files mapped.
  std::shared_ptr<const WeightStore> shared() const;
  std::string describe() const;  // file list for messages
  // Layers built from this store compute in bf16 (weights held in bf16).
  void set_compute_bf16(bool on) { bf16_ = on; }
  bool compute_bf16() const { return bf16_; }
  // Linears whose weights are GGUF block types are built dequantised to
  // float32 (exact; the parity path) instead of computing from the blocks.
  void set_dequantize_blocks(bool on) { dequant_blocks_ = on; }
  bool dequantize_blocks() const { return dequant_blocks_; }
  // Benchmark mode: linears sd.cpp would quantise get synthetic weights
  // quantised to this ggml type (-1 = float32, the default).
  void set_synthetic_quant(int ggml_type) { synth_quant_ = ggml_type; }
  int synthetic_quant() const { return synthetic_ ? synth_quant_ : -1; }
  // Bytes of float32 made from GGUF block types by get(), process-wide (tests
  // check that native quantised compute makes no float copies of its weights).
  static uint64_t dequantized_bytes();
  // Layers built from this store register their patch slots here (for LoRA);
  // copies share it. shared() copies leave it out (they live inside slots).
  void set_layer_registry(std::shared_ptr<LayerRegistry> r) { registry_ = std::move(r); }
  const std::shared_ptr<LayerRegistry>& layer_registry() const { return registry_; }
  // Notes every stored name a lookup finds (copies share the record), so a
  // loader can refuse files holding tensors its model never read.
  void track_used() { used_ = std::make_shared<Used>(); }
  // Stored names no lookup found since track_used(), sorted; empty when not tracking.
  std::vector<std::string> unused_names() const;

 private:
  std::shared_ptr<LayerRegistry> registry_;
  std::vector<std::shared_ptr<TensorFile>> files_;
  std::map<std::string, const TensorInfo*> entries_;
  Resolver resolver_;
  std::shared_ptr<Requests> requests_;
  struct Used {
    std::mutex mu;
    std::set<std::string> names;
  };
  std::shared_ptr<Used> used_;
  bool synthetic_ = false, bf16_ = false, dequant_blocks_ = ScopedDequantizeBlocks::current();
  int synth_quant_ = -1;
  mutable std::shared_ptr<const WeightStore> shared_;
  uint32_t seed_ = 0;
};

// Opens the weights of one diffusers component folder (e.g. "unet/"):
// model.safetensors / diffusion_pytorch_model.safetensors, their .fp16
// variants, or a sharded *.safetensors.index.json. Pickle-only folders are
// refused with an explanation.
WeightStore open_component_weights(const std::string& dir, const std::string& component);

// Error for pickle files (.ckpt/.bin/.pt/.pth): we never unpickle.
[[noreturn]] void refuse_pickle(const std::string& path);
bool is_pickle_path(const std::string& path);

}  // namespace vg
