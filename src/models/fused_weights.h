// Tensors a transformer reads under names its files do not have, made by
// concatenating the rows of stored tensors (q/k/v fused into one Linear) or
// swapping a tensor's two row halves. Shared by the DiT name layers (FLUX's
// diffusers folders, Qwen-Image's q/k/v fusion).
#pragma once
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "io/weights.h"

namespace vg {

// Where a requested tensor comes from: the stored parts whose rows are
// concatenated in order (one part = a rename), and whether its two row halves
// swap (one part only).
struct FusedSource {
  std::vector<std::string> parts;
  bool swap_halves = false;
};
using FusedMap = std::function<std::optional<FusedSource>(const std::string& name)>;

// `w` that also answers the names `map` knows: owned tensors of the parts'
// stored dtype (GGUF block types too: whole rows), made on first request and
// kept for the life of the store and its copies; other names resolve as in
// `w`. A name whose parts are all
// absent stays absent; some parts absent or not matching (dtype, shape)
// fails corrupt_file, naming `what` (e.g. "FLUX transformer") in the message.
WeightStore with_fused_weights(WeightStore w, FusedMap map, const std::string& what);

}  // namespace vg
