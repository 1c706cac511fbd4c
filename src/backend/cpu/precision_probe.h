// --precision auto by measurement: the first time this CPU meets a model
// architecture, time its typical layer shapes in every candidate precision
// (fp32, bf16) in this process, keep the faster, and remember the choice in
// $XDG_CACHE_HOME/visiongen/precision.json (~/.cache/... when unset), keyed by
// CPU model and architecture. CPU flags alone decide nothing: on some Xeons
// with AVX512_BF16 bf16 is 1.7x slower than fp32, on Zen 4 1.75x faster.
#pragma once
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace vg {

struct PrecisionProbe {
  std::string arch;    // e.g. "sd-unet-320", "sdxl-unet-320"
  std::string choice;  // "fp32" or "bf16"
  std::map<std::string, double> seconds;  // per candidate, for the same work
  bool cached = false;                    // read from the cache file, not measured now
  std::string cpu;                        // the CPU model the figures belong to
};

// One layer shape of an architecture: a linear (rows x in -> out) or a 3x3
// convolution (NHWC n x h x w x in -> out) when conv is set.
struct ProbeShape {
  int64_t rows_or_n = 0, in = 0, out = 0, h = 0, w = 0;
  bool conv = false;
};

// The shapes that dominate a step of `arch` ("sd", "sdxl", "dit"; others fall back
// to "sd"), scaled down so a probe takes well under a second.
std::vector<ProbeShape> probe_shapes(const std::string& arch);

// Seconds per candidate for the shapes (the measurement; tests replace it).
using ProbeTimer = std::function<std::map<std::string, double>(const std::vector<ProbeShape>&)>;
std::map<std::string, double> time_candidates(const std::vector<ProbeShape>& shapes);

// The cached choice for (this CPU, arch), or a new measurement saved there.
// `timer` defaults to time_candidates; `cache_file` "" = the default path;
// `remeasure` ignores a cached entry (and replaces it).
PrecisionProbe choose_precision(const std::string& arch, const ProbeTimer& timer = {}, const std::string& cache_file = "",
                                bool remeasure = false);
// The faster candidate; ties and missing figures keep fp32.
std::string faster_candidate(const std::map<std::string, double>& seconds);
std::string precision_cache_path();
std::string cpu_model_name();

}  // namespace vg
