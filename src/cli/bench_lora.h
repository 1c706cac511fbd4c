// `visiongen bench --lora-rank R`: merge time of a synthetic LoRA on the
// benchmark's UNet (the target: a rank-32 SDXL LoRA merges in <= 1 s).
#pragma once
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "core/tensor.h"
#include "lora/layer_registry.h"

namespace vg::cli {

// Writes a rank-`rank` diffusers/PEFT LoRA (bf16, like trainers' output)
// over every attention/proj/ff linear in `reg` (to_q/k/v, to_out.0,
// proj_in/out, ff.net.0.proj, ff.net.2) to a temp file, then times
// LoraManager::set, the first `forward` after it (its excess over `plain_s`
// is the re-materialisation of the patched weights), the weights' original
// source alone, unmerging and the forward after it. `plain_out` is a plain
// forward's output: the unmerged forward must give it bit-exactly.
nlohmann::json bench_lora_merge(const std::shared_ptr<LayerRegistry>& reg, int rank, double plain_s,
                                const Tensor& plain_out, const std::function<Tensor()>& forward);

}  // namespace vg::cli
