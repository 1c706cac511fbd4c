#include "models/fused_weights.h"

#include <algorithm>
#include <map>
#include <memory>
#include <mutex>

#include "core/error.h"

namespace vg {

namespace {

// Map nodes never move, so the TensorInfo pointers handed out stay valid.
struct OwnedTensors {
  std::mutex mu;
  std::map<std::string, std::pair<std::vector<uint8_t>, TensorInfo>> items;
};

const TensorInfo* build(const WeightStore& inner, OwnedTensors& owned, const std::string& name,
                        const FusedSource& src, const std::string& what) {
  std::vector<const TensorInfo*> parts;
  for (const auto& p : src.parts) parts.push_back(inner.find(p));
  if (std::none_of(parts.begin(), parts.end(), [](auto* p) { return p != nullptr; })) return nullptr;
  if (parts.size() == 1 && !src.swap_halves) return parts[0];
  const TensorInfo& first = **std::find_if(parts.begin(), parts.end(), [](auto* p) { return p != nullptr; });
  Shape shape = first.shape;
  for (size_t i = 0; i < parts.size(); ++i) {
    const TensorInfo* p = parts[i];
    if (!p || p->dtype != first.dtype || p->ggml_type != first.ggml_type || p->shape.empty() ||
        p->shape.size() != first.shape.size() ||
        !std::equal(p->shape.begin() + 1, p->shape.end(), first.shape.begin() + 1))
      fail(ErrorCode::kCorruptFile, what + " weights " + inner.describe() + ": '" + src.parts[i] +
                                        "' is missing or does not match its siblings (dtype/shape), so '" +
                                        name + "' cannot be formed; the weights are incomplete or damaged");
    if (i) shape[0] += p->shape[0];
  }
  std::lock_guard<std::mutex> lock(owned.mu);
  if (auto it = owned.items.find(name); it != owned.items.end()) return &it->second.second;
  auto& [bytes, info] = owned.items[name];
  if (src.swap_halves) {
    if (shape.empty() || shape[0] % 2)
      fail(ErrorCode::kCorruptFile, what + " weight '" + src.parts[0] + "' has an odd number of rows " +
                                        shape_str(shape) + "; expected two halves; the file is damaged");
    const size_t half = tensor_bytes(first, shape_numel(shape) / 2);
    bytes.assign(first.data + half, first.data + 2 * half);
    bytes.insert(bytes.end(), first.data, first.data + half);
  } else {
    for (auto* p : parts)
      bytes.insert(bytes.end(), p->data, p->data + tensor_bytes(*p, shape_numel(p->shape)));
  }
  info = TensorInfo{name, first.dtype, shape, bytes.data(), bytes.size(), first.ggml_type};
  return &info;
}

}  // namespace

WeightStore with_fused_weights(WeightStore w, FusedMap map, const std::string& what) {
  auto inner = std::make_shared<const WeightStore>(w);
  auto owned = std::make_shared<OwnedTensors>();
  w.set_resolver([inner, owned, map = std::move(map), what](const std::string& name) -> const TensorInfo* {
    const auto src = map(name);
    return src ? build(*inner, *owned, name, *src, what) : inner->find(name);  // keeps w's own resolver
  });
  return w;
}

}  // namespace vg
