// The Qwen-Image engine (diffusers' QwenImagePipeline / QwenImageImg2ImgPipeline):
// the prompt in Qwen-Image's fixed system template, the language model's last
// hidden states with the 34 template tokens dropped, packed 2x2 latents, true
// CFG (cfg_scale > 1 with a negative prompt) rescaled to the conditional
// prediction's per-token norm, the dynamic-shift schedule stretched to 0.02.
#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "models/dit_blocks.h"
#include "pipelines/latent_packing.h"
#include "pipelines/qwenimage_model.h"

namespace vg {

namespace {

constexpr int kMaxTextTokens = 1024;     // the pipeline's tokenizer_max_length
constexpr int kDefaultTextTokens = 512;  // its max_sequence_length default

class QwenImageEngine : public DitEngine {
 public:
  QwenImageEngine(std::unique_ptr<QwenImageModel> m, const LoadOptions& opts)
      : DitEngine(std::move(m->parts), opts), m_(std::move(m)) {}
  std::string preset_family() const override { return "qwen-image"; }

 protected:
  int max_text_tokens() const override { return kMaxTextTokens; }

  void encode_prompts(const GenerateParams& p, std::vector<std::string>* warnings) override {
    if (p.clip_skip > 1) warnings->push_back("Qwen-Image takes the text encoder's last layer; --clip-skip is ignored");
    if (p.guidance >= 0) warnings->push_back("Qwen-Image has no distilled guidance; --guidance is ignored (use --cfg-scale)");
    const int limit = p.max_sequence_length > 0 ? p.max_sequence_length : kDefaultTextTokens;
    cond_ = encode(p.prompt, limit, warnings);
    // QwenImagePipeline: true CFG only with true_cfg_scale > 1 and a negative prompt
    true_cfg_ = p.cfg_scale > 1.0f && !p.negative_prompt.empty();
    neg_ = true_cfg_ ? encode(p.negative_prompt, limit, warnings) : Tensor();
    if (p.cfg_scale > 1.0f && !true_cfg_)
      warnings->push_back("--cfg-scale > 1 without a negative prompt runs without CFG, as diffusers' Qwen-Image does; "
                          "pass -n \" \" for its documented default");
    if (trace_) trace_->context = cond_;
  }

  void release_text_encoders() override { m_->text_encoder->release_weights(); }

  void sampler_options(const GenerateParams&, int w, int h, SamplerOptions* o) const override {
    const int64_t s = parts_.vae->scale() * m_->config.patch_size;
    o->image_seq_len = static_cast<int>((w / s) * (h / s));
    o->flow_linear_sigmas = true;  // the pipeline passes sigmas = linspace(1, 1/N, N)
  }

  bool packed_latents() const override { return true; }

  Tensor velocity(const GenerateParams& p, const Tensor& x, const Sampler& s, size_t call) override {
    const int64_t h = x.dim(1), w = x.dim(2);
    const Tensor img = pack_latents_2x2(x);
    const float sigma = s.timesteps()[call] / 1000.0f;
    Tensor v = m_->transformer->forward(img, cond_, sigma, h / 2, w / 2);
    if (true_cfg_) {
      const Tensor u = m_->transformer->forward(img, neg_, sigma, h / 2, w / 2);
      const int64_t d = v.dim(2), rows = v.numel() / d;
      for (int64_t r = 0; r < rows; ++r) {  // comb = u + s (v - u), rescaled to |v| per token
        float* vr = v.data() + r * d;
        const float* ur = u.data() + r * d;
        double nv = 0, nc = 0;
        std::vector<float> comb(static_cast<size_t>(d));
        for (int64_t j = 0; j < d; ++j) {
          comb[j] = ur[j] + p.cfg_scale * (vr[j] - ur[j]);
          nv += static_cast<double>(vr[j]) * vr[j];
          nc += static_cast<double>(comb[j]) * comb[j];
        }
        const float k = static_cast<float>(std::sqrt(nv)) / static_cast<float>(std::sqrt(nc));
        for (int64_t j = 0; j < d; ++j) vr[j] = comb[j] * k;
      }
    }
    return unpack_latents_2x2(v, h, w);
  }

 private:
  // The tokenizer cuts the templated prompt at 1024 + 34 tokens, the 34 are
  // dropped, then the states are cut to max_sequence_length rows.
  Tensor encode(const std::string& prompt, int limit, std::vector<std::string>* warnings) const {
    const QwenPromptTemplate tmpl = QwenPromptTemplate::qwen_image();
    const std::vector<int32_t> ids = m_->tokenizer->encode_chat(prompt, tmpl.drop_tokens + kMaxTextTokens, tmpl);
    const int64_t full = static_cast<int64_t>(m_->tokenizer->encode(tmpl.apply(prompt)).size()) - tmpl.drop_tokens;
    if (full > limit)
      warnings->push_back("the prompt is " + std::to_string(full) + " tokens with Qwen-Image's template; only the "
                          "first " + std::to_string(limit) + " are used (--max-sequence-length), as diffusers truncates");
    const int64_t n = static_cast<int64_t>(ids.size());
    const Tensor all = m_->text_encoder->hidden_states(ids, n, -1);
    const int64_t keep = std::min<int64_t>(std::max<int64_t>(n - tmpl.drop_tokens, 0), limit);
    if (keep == 0)
      fail(ErrorCode::kInvalidArgument, "the prompt leaves no text tokens after Qwen-Image's template; raise "
                                        "--max-sequence-length");
    return slice_tokens(all.reshape({1, n, all.dim(1)}), tmpl.drop_tokens, keep);
  }

  std::unique_ptr<QwenImageModel> m_;
  Tensor cond_, neg_;
  bool true_cfg_ = false;
};

}  // namespace

std::unique_ptr<FamilyEngine> make_qwenimage_engine(std::unique_ptr<QwenImageModel> model, const LoadOptions& opts) {
  return std::make_unique<QwenImageEngine>(std::move(model), opts);
}

}  // namespace vg
