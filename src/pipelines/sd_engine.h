// The Stable Diffusion engine (1.x / 2.x): text-to-image, image-to-image and
// inpainting on a UNet + VAE with CLIP text conditioning. SdxlEngine derives
// from it and replaces the prompt encoding and the refiner hand-off.
#pragma once
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "lora/lora_manager.h"
#include "pipelines/denoise.h"
#include "pipelines/family_engine.h"
#include "pipelines/sd_model.h"
#include "pipelines/vae_choice.h"
#include "sampling/rng.h"

namespace vg {

// Text conditioning of one request, ready for the UNet.
struct PromptConditioning {
  Tensor cond, uncond;  // [1,T,C]; uncond empty = no classifier-free guidance
  AddedCond added;      // SDXL: rows in UNet batch order ([uncond, cond] with CFG)
};

class SdEngine : public FamilyEngine {
 public:
  SdEngine(std::unique_ptr<SdModel> model, const LoadOptions& opts);
  const ModelInfo& info() const override;
  Status validate(const GenerateParams& p, const ImageInputs& images) const override;
  GenerateResult generate(const GenerateParams& p, const ImageInputs& images, const ProgressCallback& cb) override;
  std::string preset_family() const override;
  SdModel& model() { return *model_; }

 protected:
  virtual PromptConditioning encode_prompts(const GenerateParams& p, int width, int height);
  // Model checks beyond the shared ones (e.g. SDXL's refiner); called by validate().
  virtual Status validate_family(const GenerateParams& p, int width, int height) const { return Status(); }
  // Calls of the base schedule to run before handing over (diffusers'
  // denoising_end); 0 = all.
  virtual size_t base_end_call(const GenerateParams& p, const Sampler& s) const { return 0; }
  // Continues the latents after the base model stopped at `end_call` (SDXL refiner).
  virtual Tensor refine(const GenerateParams& p, Tensor latents, int width, int height, Rng& rng,
                        const ProgressCallback& cb) {
    return latents;
  }
  // Embeddings of `text` by `encoder` (hidden state after `layers` layers; SD
  // applies the final LayerNorm, SDXL does not), cached by ids and layer.
  Tensor encode_text(const ClipTextModel& encoder, const ClipTokenizer& tok, const std::string& text, int64_t layers,
                     bool final_norm, Tensor* pooled);
  // The same under p.prompt_syntax: "a1111" weights (word:1.2)/[word] and
  // encodes 75-token chunks (BREAK starts one), concatenated along the tokens;
  // the pooled output comes from the first chunk, as in A1111.
  Tensor encode_syntax(const GenerateParams& p, const ClipTextModel& encoder, const ClipTokenizer& tok,
                       const std::string& text, int64_t layers, bool final_norm, Tensor* pooled);
  // A1111: a shorter prompt is padded with the empty prompt's chunk so both CFG rows match.
  void pad_to_same_length(const GenerateParams& p, PromptConditioning& c, const std::function<Tensor()>& empty_chunk);
  void release_text_encoders();
  SamplerOptions sampler_options(const GenerateParams& p) const;
  std::unique_ptr<Sampler> make_request_sampler(const GenerateParams& p, const SchedulerConfig& sc, SamplerChoice* choice) const;

  std::unique_ptr<SdModel> model_;
  bool keep_text_encoder_ = false;
  std::unique_ptr<LoraManager> loras_;
  VaeChoice vae_;

 private:
  struct CachedText {
    Tensor hidden, pooled;
  };
  std::list<std::pair<std::string, CachedText>> embeddings_;  // most recent first
  std::string hash_;
  bool hashed_ = false;
};

// Shared helpers of the SD-family engines.
Image latents_preview(const Tensor& lat, int scale, const std::string& family);
Image tensor_to_image(const Tensor& nhwc, int64_t index);
// Sizes, clip skip and working memory against this model and machine.
Status check_model_params(const SdModel& m, const GenerateParams& p, int width, int height);

}  // namespace vg
