// The flow-matching pipeline shared by the diffusion-transformer families
// (FLUX, SD3; later Z-Image, Qwen-Image): noise, img2img start by
// scale_noise, latent-blend inpainting, the sampler loop and the VAE with
// its shift and scale. Each family engine supplies prompt encoding and the
// guided velocity (its transformer calls, CFG, skip-layer guidance).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "pipelines/family_engine.h"
#include "pipelines/latent_codec.h"
#include "sampling/sampler.h"

namespace vg {

// What every DiT model has besides its text encoders and transformer.
struct DitParts {
  ModelInfo info;
  std::unique_ptr<LatentCodec> vae;
  SchedulerConfig scheduler;
  std::string hash_source;  // file whose sha256 is the A1111 "Model hash"
};

// The ModelInfo of a DiT model at `path`: flow prediction, its VAE's scale,
// sizes in multiples of scale * patch, `default_size` square by default.
ModelInfo dit_model_info(const std::string& family, const std::string& path, const LatentCodec& vae, int64_t patch,
                         int default_size);

class DitEngine : public FamilyEngine {
 public:
  DitEngine(DitParts parts, const LoadOptions& opts) : parts_(std::move(parts)), keep_text_(opts.keep_text_encoder) {}
  const ModelInfo& info() const override { return parts_.info; }
  Status validate(const GenerateParams& p, const ImageInputs& images) const override;
  GenerateResult generate(const GenerateParams& p, const ImageInputs& images, const ProgressCallback& cb) override;

 protected:
  // Encodes the request's prompts; the family keeps them for velocity().
  virtual void encode_prompts(const GenerateParams& p, std::vector<std::string>* warnings) = 0;
  virtual void release_text_encoders() = 0;
  // The guided velocity for NHWC latents x [1,h,w,C] at model call `call` of `s`.
  virtual Tensor velocity(const GenerateParams& p, const Tensor& x, const Sampler& s, size_t call) = 0;
  // Family knobs of the schedule (token count for the dynamic shift, pipeline sigmas).
  virtual void sampler_options(const GenerateParams& p, int width, int height, SamplerOptions* o) const {}
  virtual Status validate_family(const GenerateParams& p, int width, int height) const { return Status(); }
  // Random draws a pipeline makes for inpainting beyond the posterior and the
  // noise (FluxInpaint encodes the masked image too), to keep seeds aligned.
  virtual int extra_inpaint_draws() const { return 0; }
  // The pipeline samples packed 2x2 latents (FLUX, Qwen-Image): stochastic
  // samplers draw their noise in that layout.
  virtual bool packed_latents() const { return false; }
  // The most text tokens --max-sequence-length may ask for (T5: 512).
  virtual int max_text_tokens() const { return 512; }

  std::unique_ptr<Sampler> request_sampler(const GenerateParams& p, int width, int height, SamplerChoice* choice) const;

  DitParts parts_;
  bool keep_text_ = false;

 private:
  std::string hash_;
};

}  // namespace vg
