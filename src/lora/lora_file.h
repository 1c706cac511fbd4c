// LoRA files (safetensors only): kohya/A1111 (lora_unet_*, lora_te[12]_*,
// with LoCon convs and optional lora_mid), LyCORIS LoHa/LoKr, diffusers/PEFT
// (unet./text_encoder[_2]. + lora_A/lora_B, alpha from the metadata) and
// the older diffusers attention-processor names. Each layer's update is
// scale * (alpha/rank) * delta, delta built from the factors in float32.
#pragma once
#include <future>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace vg {

enum class LoraKind { kLora, kLoha, kLokr, kFull };

struct LoraModule {
  std::string key;        // module key as in the file, for messages
  std::string component;  // "unet", "text_encoder", "text_encoder_2"
  std::string match;      // module path inside the component, '.' written '_'
  bool kohya_te = false;  // "lora_te_" (SD1/SD2 naming: one text encoder)
  LoraKind kind = LoraKind::kLora;
  std::map<std::string, Tensor> t;  // "down", "up", "mid", "hada_w1_a", "lokr_w1", "diff", ...
  float alpha = 0;
  bool has_alpha = false;
};

struct LoraFile {
  std::string path;
  // A1111 "Lora hashes": sha256 of the data after the header, 12 hex. Hashed
  // on a thread of its own from load on (a large file takes ~0.3 s), so
  // applying a LoRA does not wait for it; the first call waits if needed.
  std::string hash() const { return hash_.get(); }
  std::shared_future<std::string> hash_;
  std::vector<LoraModule> modules;
  std::vector<std::string> ignored_keys;  // tensors of no format we know (e.g. dora_scale)
};

// Throws corrupt_file (truncated/malformed), unsupported_format (pickle).
std::shared_ptr<const LoraFile> load_lora_file(const std::string& path);

// Shape of the module's full update ([out,in] or [out,in,kh,kw]), or a
// message saying why the factors are inconsistent.
Shape lora_delta_shape(const LoraModule& m, std::string* why);
// alpha/rank (LyCORIS rules: 1 when there is no alpha or no low-rank factor).
float lora_alpha_scale(const LoraModule& m);
// The factors of a plain LoRA update, delta = up [out, r] @ down [r, fan_in]
// (lora_mid folded into down); false for LoHa/LoKr/full (no low-rank form).
bool lora_low_rank(const LoraModule& m, Tensor* up, Tensor* down);
// w += scale * delta (w has the layer's weight shape; same numel as the delta).
void lora_add_delta(const LoraModule& m, float scale, Tensor& w);

}  // namespace vg
