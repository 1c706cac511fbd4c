// The Stable Diffusion 3 / 3.5 engine (diffusers' StableDiffusion3Pipeline
// and StableDiffusion3Img2ImgPipeline): CLIP-L + CLIP-G penultimate states
// padded to the T5 width and joined with T5's (or zeros without T5), pooled
// CLIP vectors, CFG over the batch [uncond, cond], and SD3.5's skip-layer
// guidance.
#include <algorithm>
#include <sstream>

#include "backend/cpu/ops.h"
#include "core/error.h"
#include "models/dit_blocks.h"
#include "pipelines/sd3_model.h"

namespace vg {

namespace {

struct Sd3Prompt {
  Tensor states, pooled;  // [1, 77 + S, D], [1, P]
};

std::vector<int> parse_layers(const std::string& s) {
  std::vector<int> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ','))
    if (item.find_first_not_of(' ') != std::string::npos) out.push_back(std::stoi(item));
  return out;
}

// [1,T,a] ++ [1,T,b] along channels, zero-padded to `width`.
Tensor join_clip(const Tensor& l, const Tensor& g, int64_t width) {
  const int64_t t = l.dim(1), a = l.dim(2), b = g.dim(2);
  Tensor out = Tensor::zeros({1, t, width});
  for (int64_t i = 0; i < t; ++i) {
    std::copy_n(l.data() + i * a, a, out.data() + i * width);
    std::copy_n(g.data() + i * b, b, out.data() + i * width + a);
  }
  return out;
}

class Sd3Engine : public DitEngine {
 public:
  Sd3Engine(std::unique_ptr<Sd3Model> m, const LoadOptions& opts) : DitEngine(std::move(m->parts), opts), m_(std::move(m)) {}
  std::string preset_family() const override { return "sd3"; }

 protected:
  Status validate_family(const GenerateParams& p, int w, int h) const override {
    for (int l : parse_layers(p.skip_layers))
      if (l < 0 || l >= m_->config.num_layers)
        return Error{ErrorCode::kInvalidArgument, "skip layer " + std::to_string(l) + " does not exist: this transformer has " +
                                                      std::to_string(m_->config.num_layers) + " blocks (0.." +
                                                      std::to_string(m_->config.num_layers - 1) + ")"};
    const int64_t limit = m_->config.pos_embed_max_size * parts_.info.size_multiple;
    if (w > limit || h > limit)
      return Error{ErrorCode::kInvalidArgument, "this SD3 transformer's position table covers at most " + std::to_string(limit) +
                                                    "x" + std::to_string(limit) + " pixels; generate smaller"};
    if (p.clip_skip > std::min(m_->clip_l->config().num_layers, m_->clip_g->config().num_layers))
      return Error{ErrorCode::kInvalidArgument, "clip_skip is larger than the text encoders' layers allow"};
    return Status();
  }

  void encode_prompts(const GenerateParams& p, std::vector<std::string>* warnings) override {
    if (p.guidance >= 0) warnings->push_back("SD3 has no distilled guidance; --guidance is ignored (use --cfg-scale)");
    const int msl = p.max_sequence_length > 0 ? p.max_sequence_length : 256;
    auto or_prompt = [](const std::string& a, const std::string& b) { return a.empty() ? b : a; };
    cond_ = encode(p.prompt, or_prompt(p.prompt_2, p.prompt), or_prompt(p.prompt_3, p.prompt), msl, p.clip_skip);
    cfg_ = p.cfg_scale > 1.0f;
    skip_ = parse_layers(p.skip_layers);
    if (cfg_)  // diffusers: the negative prompt never takes clip_skip
      uncond_ = encode(p.negative_prompt, or_prompt(p.negative_prompt_2, p.negative_prompt),
                       or_prompt(p.negative_prompt_3, p.negative_prompt), msl, 1);
    if (trace_) {
      trace_->context = cfg_ ? concat_batch(uncond_.states, cond_.states) : cond_.states;
      trace_->text_embeds = cfg_ ? concat_batch(uncond_.pooled, cond_.pooled) : cond_.pooled;
    }
  }

  void release_text_encoders() override {
    m_->clip_l->release_weights();
    m_->clip_g->release_weights();
    if (m_->t5) m_->t5->release_weights();
  }

  Tensor velocity(const GenerateParams& p, const Tensor& x, const Sampler& s, size_t call) override {
    const float t = s.timesteps()[call];
    if (!cfg_) return m_->transformer->forward(x, cond_.states, cond_.pooled, {t});
    const Tensor both = m_->transformer->forward(concat_batch(x, x), concat_batch(uncond_.states, cond_.states),
                                                 concat_batch(uncond_.pooled, cond_.pooled), {t, t});
    const int64_t n = x.numel();
    Tensor v(x.shape());
    const float* u = both.data();
    const float* c = both.data() + n;
    for (int64_t i = 0; i < n; ++i) v.data()[i] = u[i] + p.cfg_scale * (c[i] - u[i]);
    // skip-layer guidance on the steps between start and stop (diffusers counts model calls)
    const double steps = p.steps;
    if (!skip_.empty() && call > steps * p.skip_layer_start && call < steps * p.skip_layer_stop) {
      const Tensor sk = m_->transformer->forward(x, cond_.states, cond_.pooled, {t}, skip_);
      for (int64_t i = 0; i < n; ++i) v.data()[i] += (c[i] - sk.data()[i]) * p.skip_layer_scale;
    }
    return v;
  }

 private:
  Sd3Prompt encode(const std::string& text_l, const std::string& text_g, const std::string& text_t5, int msl, int clip_skip) {
    const ClipTextModel& l = *m_->clip_l;
    const ClipTextModel& g = *m_->clip_g;
    Tensor pl, pg;
    // hidden_states[-(clip_skip + 2)] in diffusers' counting = our clip_skip - 1 more layers off the top
    const Tensor hl = l.hidden_and_pooled({m_->clip_l_tokenizer->encode_padded(text_l)}, l.config().num_layers - clip_skip, &pl);
    const Tensor hg = g.hidden_and_pooled({m_->clip_g_tokenizer->encode_padded(text_g)}, g.config().num_layers - clip_skip, &pg);
    const int64_t width = m_->config.joint_attention_dim;
    Sd3Prompt r;
    const Tensor t5 = m_->t5 ? m_->t5->encode({m_->t5_tokenizer->encode_padded(text_t5, msl)}) : Tensor::zeros({1, msl, width});
    r.states = concat_tokens(join_clip(hl, hg, width), t5);
    r.pooled = concat_channels(pl, pg);
    return r;
  }

  std::unique_ptr<Sd3Model> m_;
  Sd3Prompt cond_, uncond_;
  bool cfg_ = false;
  std::vector<int> skip_;  // the request's skip-layer guidance blocks
};

}  // namespace

std::unique_ptr<FamilyEngine> make_sd3_engine(std::unique_ptr<Sd3Model> model, const LoadOptions& opts) {
  return std::make_unique<Sd3Engine>(std::move(model), opts);
}

}  // namespace vg
