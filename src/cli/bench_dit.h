// `visiongen bench --arch flux-dev|flux-schnell|sd35-medium|sd35-large|
// zimage-turbo|qwen-image`: the DiT section. Real widths with synthetic weights; the
// transformer is timed whole when it fits in memory, else as a stack of a few
// blocks at the real width with the time scaled by FLOPs to the real depth
// (said in the output). Stacks: FLUX N double + N single, SD3 N joint,
// Z-Image min(N, 2) noise + context refiner and N joint layers, Qwen-Image N
// dual-stream blocks.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "models/flux.h"
#include "models/mmdit.h"
#include "models/qwenimage.h"
#include "models/zimage.h"

namespace vg::cli {

struct DitBenchOptions {
  std::string arch;                // one of dit_bench_archs()
  std::vector<int> sizes{1024};    // square image sizes
  int steps = 1;                   // timed transformer calls per size (best reported)
  std::string precision = "both";  // fp32, bf16 or both
  std::string quant;               // ggml type for the transformer's linears (fp32 compute otherwise)
  int stack = 0;                   // 0: whole when it fits, else 2; N: always a stack of N blocks (see help)
  int threads = 0;
  bool json = false, profile = false;
};

const std::vector<std::string>& dit_bench_archs();
bool is_dit_arch(const std::string& arch);
void run_dit_bench(const DitBenchOptions& o);

// Model FLOPs of one transformer call (GEMMs and attention, batch 1), and
// weight element counts; exposed for tests. `image_tokens` after patching.
struct DitShape {
  double flops = 0, params = 0;
};
DitShape flux_cost(const FluxConfig& c, int64_t image_tokens, int64_t text_tokens);
DitShape mmdit_cost(const MmditConfig& c, int64_t image_tokens, int64_t text_tokens);
// Z-Image counts the padded sequences (multiples of 32) the model computes.
DitShape zimage_cost(const ZImageConfig& c, int64_t image_tokens, int64_t text_tokens);
DitShape qwenimage_cost(const QwenImageConfig& c, int64_t image_tokens, int64_t text_tokens);

}  // namespace vg::cli
