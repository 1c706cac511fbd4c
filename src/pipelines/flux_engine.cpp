// The FLUX.1 engine (diffusers' FluxPipeline / FluxImg2ImgPipeline /
// FluxInpaintPipeline): CLIP-L pooled + T5 states, packed 2x2 latents,
// distilled guidance for dev, true CFG with a negative prompt when
// cfg_scale > 1, the schedule shifted by the image's token count.
#include "backend/cpu/ops.h"
#include "core/error.h"
#include "pipelines/flux_model.h"
#include "pipelines/latent_packing.h"

namespace vg {

namespace {

struct FluxPrompt {
  Tensor pooled, states;  // [1,P], [1,S,D]
};

class FluxEngine : public DitEngine {
 public:
  FluxEngine(std::unique_ptr<FluxModel> m, const LoadOptions& opts)
      : DitEngine(std::move(m->parts), opts), m_(std::move(m)) {}
  std::string preset_family() const override { return m_->config.guidance_embeds ? "flux-dev" : "flux-schnell"; }

 protected:
  void encode_prompts(const GenerateParams& p, std::vector<std::string>* warnings) override {
    if (p.guidance >= 0 && !m_->config.guidance_embeds)
      warnings->push_back("this FLUX model has no guidance embedding (schnell-type); --guidance is ignored");
    if (p.clip_skip > 1) warnings->push_back("FLUX uses CLIP-L's pooled output only; --clip-skip is ignored");
    const int msl = p.max_sequence_length > 0 ? p.max_sequence_length : 512;
    cond_ = encode(p.prompt, p.prompt_2.empty() ? p.prompt : p.prompt_2, msl);
    // true CFG needs a negative prompt (FluxPipeline: do_true_cfg = true_cfg_scale > 1 and a negative prompt)
    true_cfg_ = p.cfg_scale > 1.0f && !(p.negative_prompt.empty() && p.negative_prompt_2.empty());
    if (true_cfg_)
      neg_ = encode(p.negative_prompt, p.negative_prompt_2.empty() ? p.negative_prompt : p.negative_prompt_2, msl);
    else
      neg_ = FluxPrompt{};
    if (trace_) {
      trace_->context = true_cfg_ ? concat_batch(neg_.states, cond_.states) : cond_.states;
      trace_->text_embeds = true_cfg_ ? concat_batch(neg_.pooled, cond_.pooled) : cond_.pooled;
    }
  }

  void release_text_encoders() override {
    m_->clip->release_weights();
    m_->t5->release_weights();
  }

  void sampler_options(const GenerateParams&, int w, int h, SamplerOptions* o) const override {
    const int64_t s = parts_.vae->scale() * 2;
    o->image_seq_len = static_cast<int>((w / s) * (h / s));
    o->flow_linear_sigmas = true;
  }

  Tensor velocity(const GenerateParams& p, const Tensor& x, const Sampler& s, size_t call) override {
    const int64_t h = x.dim(1), w = x.dim(2);
    const Tensor img = pack_latents_2x2(x), img_ids = packed_position_ids(h, w);
    const std::vector<float> t{s.timesteps()[call] / 1000.0f};
    std::vector<float> g;
    if (m_->config.guidance_embeds) g = {p.guidance >= 0 ? p.guidance : 3.5f};
    auto run = [&](const FluxPrompt& c) {
      const Tensor txt_ids = Tensor::zeros({c.states.dim(1), 3});
      return m_->transformer->forward(img, c.states, c.pooled, t, g, img_ids, txt_ids);
    };
    Tensor v = run(cond_);
    if (true_cfg_) {
      const Tensor u = run(neg_);
      for (int64_t i = 0; i < v.numel(); ++i) v.data()[i] = u.data()[i] + p.cfg_scale * (v.data()[i] - u.data()[i]);
    }
    return unpack_latents_2x2(v, h, w);
  }

  int extra_inpaint_draws() const override { return 1; }  // FluxInpaint encodes the masked image too
  bool packed_latents() const override { return true; }

 private:
  FluxPrompt encode(const std::string& clip_text, const std::string& t5_text, int msl) {
    FluxPrompt r;
    const ClipTextModel& clip = *m_->clip;
    clip.hidden_and_pooled({m_->clip_tokenizer->encode_padded(clip_text)}, clip.config().num_layers, &r.pooled);
    r.states = m_->t5->encode({m_->t5_tokenizer->encode_padded(t5_text, msl)});
    return r;
  }

  std::unique_ptr<FluxModel> m_;
  FluxPrompt cond_, neg_;
  bool true_cfg_ = false;
};

}  // namespace

std::unique_ptr<FamilyEngine> make_flux_engine(std::unique_ptr<FluxModel> model, const LoadOptions& opts) {
  return std::make_unique<FluxEngine>(std::move(model), opts);
}

}  // namespace vg
