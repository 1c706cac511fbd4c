// Internal pieces of the DiT bench (bench_dit*.cpp): the architectures, the
// transformer call per family, and the text-encoder and VAE phases.
#pragma once
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "cli/bench_dit.h"
#include "models/zimage.h"

namespace vg::cli::dit_bench {

extern bool g_json;  // --json: only the JSON goes to stdout
void say(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
double process_peak_gb();                   // the process's peak RSS over the phases, GB
Tensor filled(Shape shape, uint32_t salt);  // deterministic values in [-1, 1)
// Best-of-4 GFLOP/s of a Linear built as the transformers' are (the store's
// precision/quantisation) on [m x 3072] x [3072 x 3072]^T: the same-run peak.
double gemm_peak(const WeightStore& ws, int64_t m);

enum class Family { kFlux, kMmdit, kZImage, kQwenImage };

struct Arch {
  std::string name;
  Family family = Family::kFlux;
  FluxConfig fc;
  MmditConfig mc;
  ZImageConfig zc;
  QwenImageConfig qc;
  // Text tokens the transformer sees: FLUX T5 max_sequence_length; SD3 77 CLIP
  // + 256 T5; Z-Image the 512-token maximum (padded to 32 by the model);
  // Qwen-Image a one-line prompt: 100 templated tokens less the 34-token
  // system prefix the pipeline drops.
  int64_t text_tokens = 512;
  int64_t encoder_tokens = 512;  // T5 (FLUX/SD3) or LLM (Z-Image, Qwen-Image) input tokens
};

Arch arch_of(const std::string& name);
// The stack timed instead of the whole model (see bench_dit.h).
Arch stack_of(const Arch& real, int n);
DitShape cost(const Arch& a, int64_t image_tokens);
std::string depth(const Arch& a);
int64_t hidden_width(const Arch& a);

// A transformer call at `size` (image tokens: (size / 16)^2) with the arch's
// text tokens (or `text_tokens`).
class DitModel {
 public:
  DitModel(const Arch& a, const WeightStore& ws);
  Tensor run(const Arch& a, int size, int64_t text_tokens = -1) const;

 private:
  std::optional<FluxTransformer> flux_;
  std::optional<MmditTransformer> mmdit_;
  std::optional<ZImageTransformer> zimage_;
  std::optional<QwenImageTransformer> qwen_;
};

// The text encoders of `real` (big ones as `n` layers, scaled to the depth
// the pipeline runs); fills text_encode_s and the per-encoder fields.
void bench_text_encoders(const Arch& real, const WeightStore& ws, int n, const std::string& label,
                         nlohmann::json& out);
// VAE decode at every size into out["sizes"][i].
void bench_vae(const Arch& real, const WeightStore& ws, const std::vector<int>& sizes,
               const std::string& label, nlohmann::json& out);

}  // namespace vg::cli::dit_bench
