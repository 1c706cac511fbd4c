// One engine per model family behind one interface: vg::Engine loads the
// model, picks the family's engine and forwards every call to it. Engines
// throw VgException; vg::Engine converts at the API boundary.
#pragma once
#include <memory>
#include <vector>

#include "core/tensor.h"

#include "visiongen/visiongen.h"

namespace vg {

struct SdModel;

// What a run went through, for parity tests: latents after every sampler
// step (the base model's, then the refiner's) and before decoding (NHWC).
struct EngineTrace {
  std::vector<Tensor> step_latents, unet_inputs;
  Tensor final_latents;
  Tensor context, text_embeds, time_ids;  // the UNet's conditioning rows ([uncond, cond] with CFG)
};

class FamilyEngine {
 public:
  virtual ~FamilyEngine() = default;
  virtual const ModelInfo& info() const = 0;
  // Model-specific checks of a request (sizes, samplers, inputs) without running it.
  virtual Status validate(const GenerateParams& p, const ImageInputs& images) const = 0;
  // `p` has presets applied and passed validate().
  virtual GenerateResult generate(const GenerateParams& p, const ImageInputs& images, const ProgressCallback& cb) = 0;
  // Preset family id (data/presets/*.yaml `family:`).
  virtual std::string preset_family() const = 0;
  // Tests: record into `trace` (null = stop recording).
  void set_trace(EngineTrace* trace) { trace_ = trace; }

 protected:
  EngineTrace* trace_ = nullptr;
};

// Stable Diffusion 1.x / 2.x (sd_engine.cpp) and XL (sdxl_engine.cpp).
// Weight bytes once loaded at this precision (block-quantised GGUF tensors
// at their own size when computed natively), and the out_of_memory check
// made before loading: it names a precision or GGUF type that would fit.
// The weight files a load reads: the file, or per folder one variant of each
// safetensors file (a ".fp16" twin is the same weights).
std::vector<std::string> weight_files(const std::string& path);
double weight_bytes_in_memory(const std::string& path, bool bf16, bool quant_native);
void check_weights_fit(const std::string& path, const std::string& precision, bool quant_native);

std::unique_ptr<FamilyEngine> make_sd_engine(std::unique_ptr<SdModel> model, const LoadOptions& opts);
std::unique_ptr<FamilyEngine> make_sdxl_engine(std::unique_ptr<SdModel> model, const LoadOptions& opts);

}  // namespace vg
