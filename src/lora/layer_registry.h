// Module name -> patch slot of every Linear/Conv2d a component built while a
// registry was attached to its WeightStore. Names are diffusers/transformers
// module paths without ".weight" (e.g. "down_blocks.1.attentions.0.
// transformer_blocks.0.attn2.to_k", "text_model.encoder.layers.0.self_attn.q_proj").
#pragma once
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "backend/cpu/layers.h"

namespace vg {

class LayerRegistry {
 public:
  // The slot for `name`: the existing one (a rebuilt layer, e.g. CLIP's
  // per-prompt weights, attaches to it and so gets the patched weight), or a
  // new one with this shape and original-weight source.
  std::shared_ptr<LayerPatch> get_or_add(const std::string& name, const Shape& shape, LayerPatch::Source source) {
    std::lock_guard<std::mutex> lock(mu_);
    auto& slot = slots_[name];
    if (!slot) slot = std::make_shared<LayerPatch>(shape, std::move(source));
    return slot;
  }
  std::shared_ptr<LayerPatch> find(const std::string& name) const {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = slots_.find(name);
    return it == slots_.end() ? nullptr : it->second;
  }
  // A snapshot (slots are shared, so it stays valid).
  std::map<std::string, std::shared_ptr<LayerPatch>> slots() const {
    std::lock_guard<std::mutex> lock(mu_);
    return slots_;
  }

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<LayerPatch>> slots_;
};

}  // namespace vg
