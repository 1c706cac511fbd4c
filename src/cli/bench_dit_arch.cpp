// The DiT bench's architectures (real configs) and one transformer call per
// family on deterministic inputs.
#include "cli/bench_dit_parts.h"

namespace vg::cli::dit_bench {

Arch arch_of(const std::string& name) {
  Arch a;
  a.name = name;
  if (name == "flux-schnell") a.fc.guidance_embeds = false;
  if (name.rfind("sd35", 0) == 0) {
    a.family = Family::kMmdit;
    a.text_tokens = 333, a.encoder_tokens = 256;
    MmditConfig& m = a.mc;
    m.qk_norm = "rms_norm";
    if (name == "sd35-medium") {
      m.num_layers = 24, m.num_attention_heads = 24, m.pos_embed_max_size = 384;
      for (int64_t i = 0; i <= 12; ++i) m.dual_attention_layers.push_back(i);
    } else {
      m.num_layers = 38, m.num_attention_heads = 38, m.pos_embed_max_size = 192;
    }
    m.caption_projection_dim = m.hidden();
  }
  if (name == "zimage-turbo") {  // ZImageConfig's defaults are Z-Image-Turbo's config
    a.family = Family::kZImage;
    a.text_tokens = a.encoder_tokens = 512;  // the pipeline's max_sequence_length
  }
  if (name == "qwen-image") {  // QwenImageConfig's defaults are Qwen-Image's config
    a.family = Family::kQwenImage;
    a.encoder_tokens = 100, a.text_tokens = 100 - 34;
  }
  return a;
}

Arch stack_of(const Arch& real, int n) {
  Arch a = real;
  a.fc.num_layers = a.fc.num_single_layers = n;
  a.mc.num_layers = n;
  if (!real.mc.dual_attention_layers.empty()) a.mc.dual_attention_layers = {0};
  a.zc.n_layers = n;
  a.zc.n_refiner_layers = std::min<int64_t>(n, real.zc.n_refiner_layers);
  a.qc.num_layers = n;
  return a;
}

DitShape cost(const Arch& a, int64_t image_tokens) {
  switch (a.family) {
    case Family::kFlux:
      return flux_cost(a.fc, image_tokens, a.text_tokens);
    case Family::kMmdit:
      return mmdit_cost(a.mc, image_tokens, a.text_tokens);
    case Family::kZImage:
      return zimage_cost(a.zc, image_tokens, a.text_tokens);
    case Family::kQwenImage:
      return qwenimage_cost(a.qc, image_tokens, a.text_tokens);
  }
  return {};
}

std::string depth(const Arch& a) {
  switch (a.family) {
    case Family::kFlux:
      return std::to_string(a.fc.num_layers) + "+" + std::to_string(a.fc.num_single_layers);
    case Family::kMmdit:
      return std::to_string(a.mc.num_layers);
    case Family::kZImage:  // noise refiner + context refiner + joint layers
      return std::to_string(a.zc.n_refiner_layers) + "+" + std::to_string(a.zc.n_refiner_layers) + "+" +
             std::to_string(a.zc.n_layers);
    case Family::kQwenImage:
      return std::to_string(a.qc.num_layers);
  }
  return "";
}

int64_t hidden_width(const Arch& a) {
  switch (a.family) {
    case Family::kFlux:
      return a.fc.inner_dim();
    case Family::kMmdit:
      return a.mc.hidden();
    case Family::kZImage:
      return a.zc.dim;
    case Family::kQwenImage:
      return a.qc.inner_dim();
  }
  return 0;
}

DitModel::DitModel(const Arch& a, const WeightStore& ws) {
  switch (a.family) {
    case Family::kFlux:
      flux_.emplace(a.fc, ws);
      break;
    case Family::kMmdit:
      mmdit_.emplace(a.mc, ws);
      break;
    case Family::kZImage:
      zimage_.emplace(a.zc, ws);
      break;
    case Family::kQwenImage:
      qwen_.emplace(a.qc, ws);
      break;
  }
}

Tensor DitModel::run(const Arch& a, int size, int64_t text_tokens) const {
  const int64_t lat = size / 8, side = size / 16, toks = side * side,
                s = text_tokens < 0 ? a.text_tokens : text_tokens;
  if (flux_) {
    Tensor ids = Tensor::zeros({toks, 3});
    for (int64_t i = 0; i < toks; ++i) {
      ids.data()[i * 3 + 1] = static_cast<float>(i / side);
      ids.data()[i * 3 + 2] = static_cast<float>(i % side);
    }
    return flux_->forward(filled({1, toks, 64}, 2), filled({1, s, 4096}, 3), filled({1, 768}, 4), {1.0f},
                          {3.5f}, ids, Tensor::zeros({s, 3}));
  }
  if (mmdit_)
    return mmdit_->forward(filled({1, lat, lat, 16}, 2), filled({1, s, 4096}, 3), filled({1, 2048}, 4),
                           {500.0f});
  if (qwen_)  // packed latents [1, tokens, 64] on a side x side grid
    return qwen_->forward(filled({1, toks, a.qc.in_channels}, 2), filled({1, s, a.qc.joint_attention_dim}, 3),
                          0.5f, side, side);
  return zimage_->forward(filled({1, lat, lat, a.zc.in_channels}, 2), filled({s, a.zc.cap_feat_dim}, 3),
                          0.5f);
}

}  // namespace vg::cli::dit_bench
