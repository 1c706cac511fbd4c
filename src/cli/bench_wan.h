// `visiongen bench --arch wan22-ti2v-5b` (bench_wan.cpp): Wan 2.2 TI2V-5B's
// transformer, UMT5-XXL and VAE at their real widths with synthetic weights.
#pragma once
#include <string>
#include <vector>

namespace vg::cli {

struct WanBenchOptions {
  int width = 832, height = 480;  // the video size (multiples of 32)
  std::vector<int> frames{17, 33};
  int steps = 1;                  // timed transformer calls per frame count (best reported)
  int stack = 0;                  // 0: whole transformer when it fits, else 2 blocks; N: N blocks
  int text_tokens = 512;          // UMT5 tokens (the pipeline's max_sequence_length)
  std::string precision = "both";
  int threads = 0;
  bool json = false, profile = false;
};

void run_wan_bench(const WanBenchOptions& o);

}  // namespace vg::cli
