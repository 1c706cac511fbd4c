// The Z-Image engine (diffusers' ZImagePipeline / ZImageImg2ImgPipeline):
// the prompt wrapped in the Qwen3 chat template, hidden_states[-2] of the
// valid tokens, CFG as cond + g (cond - uncond) with g = cfg_scale - 1 (off
// at cfg_scale 1, Turbo's way), the model's output negated into the flow
// velocity, the timestep given as 1 - sigma.
#include "core/error.h"
#include "pipelines/zimage_model.h"

namespace vg {

namespace {

class ZImageEngine : public DitEngine {
 public:
  ZImageEngine(std::unique_ptr<ZImageModel> m, const LoadOptions& opts)
      : DitEngine(std::move(m->parts), opts), m_(std::move(m)) {}
  std::string preset_family() const override { return m_->turbo ? "zimage-turbo" : "zimage"; }

 protected:
  void encode_prompts(const GenerateParams& p, std::vector<std::string>* warnings) override {
    if (p.clip_skip > 1) warnings->push_back("Z-Image takes the Qwen3 encoder's second-to-last layer; --clip-skip is ignored");
    if (p.guidance >= 0) warnings->push_back("Z-Image has no distilled guidance; --guidance is ignored (use --cfg-scale)");
    const int msl = p.max_sequence_length > 0 ? p.max_sequence_length : 512;
    cond_ = encode(p.prompt, msl, warnings);
    // diffusers: CFG when guidance_scale > 0; here guidance_scale = cfg_scale - 1
    cfg_ = p.cfg_scale > 1.0f;
    neg_ = cfg_ ? encode(p.negative_prompt, msl, warnings) : Tensor();
    if (trace_) trace_->context = cond_;
  }

  int max_text_tokens() const override { return 1024; }

  void release_text_encoders() override { m_->text_encoder->release_weights(); }

  void sampler_options(const GenerateParams&, int w, int h, SamplerOptions* o) const override {
    const int64_t s = parts_.vae->scale() * m_->config.patch_size;
    o->image_seq_len = static_cast<int>((w / s) * (h / s));
    o->flow_linear_sigmas = true;  // the pipeline passes sigmas = linspace(1, 1/N, N)
  }

  Tensor velocity(const GenerateParams& p, const Tensor& x, const Sampler& s, size_t call) override {
    const float t = (1000.0f - s.timesteps()[call]) / 1000.0f;
    Tensor pred = m_->transformer->forward(x, cond_, t);
    if (cfg_) {
      const Tensor u = m_->transformer->forward(x, neg_, t);
      const float g = p.cfg_scale - 1.0f;
      for (int64_t i = 0; i < pred.numel(); ++i) pred.data()[i] += g * (pred.data()[i] - u.data()[i]);
    }
    for (int64_t i = 0; i < pred.numel(); ++i) pred.data()[i] = -pred.data()[i];  // v = -pred
    return pred;
  }

 private:
  Tensor encode(const std::string& prompt, int msl, std::vector<std::string>* warnings) const {
    const QwenPromptTemplate tmpl = QwenPromptTemplate::zimage();
    const std::vector<int32_t> ids = m_->tokenizer->encode_chat(prompt, msl, tmpl);
    const size_t full = m_->tokenizer->encode(tmpl.apply(prompt)).size();
    if (full > ids.size())
      warnings->push_back("the prompt is " + std::to_string(full) + " tokens with Z-Image's chat template; only the "
                          "first " + std::to_string(msl) + " are used (--max-sequence-length), as diffusers truncates");
    return m_->text_encoder->hidden_states(ids, static_cast<int64_t>(ids.size()), -2);
  }

  std::unique_ptr<ZImageModel> m_;
  Tensor cond_, neg_;
  bool cfg_ = false;
};

}  // namespace

std::unique_ptr<FamilyEngine> make_zimage_engine(std::unique_ptr<ZImageModel> model, const LoadOptions& opts) {
  return std::make_unique<ZImageEngine>(std::move(model), opts);
}

}  // namespace vg
