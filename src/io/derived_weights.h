// A weight store that answers names of one layout from tensors stored under
// another: a rename, rows of several tensors concatenated (fused q/k/v), or
// the two row halves swapped. FLUX and Z-Image read their original names
// from diffusers folders this way; the fused tensors are made on first
// request, in the stored dtype (GGUF block types too: whole rows).
#pragma once
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "io/weights.h"

namespace vg {

// Where a tensor of the wanted layout lives in the stored one: the parts whose
// rows are concatenated (one part = a rename), and whether its row halves swap.
struct DerivedSource {
  std::vector<std::string> parts;
  bool swap_halves = false;
};
using DerivedMap = std::function<std::optional<DerivedSource>(const std::string& name)>;

// `stored` that also answers every name `map` knows. `what` names the model in
// errors ("FLUX transformer"). A name whose parts are all absent stays absent.
WeightStore derive_weights(WeightStore stored, DerivedMap map, const std::string& what);

}  // namespace vg
