#include "text/clip_text_model.h"

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "models/config_util.h"
#include "io/atomic_file.h"
#include "lora/layer_registry.h"
#include "models/blocks.h"

namespace vg {

ClipTextConfig ClipTextConfig::from_json_file(const std::string& path) { return from_json(read_json_file(path, "CLIP text encoder"), path); }

ClipTextConfig ClipTextConfig::from_json(const nlohmann::json& j, const std::string& path) {
  ClipTextConfig c;
  try {
    c.hidden_size = j.value("hidden_size", c.hidden_size);
    c.intermediate_size = j.value("intermediate_size", c.intermediate_size);
    c.num_heads = j.value("num_attention_heads", c.num_heads);
    c.num_layers = j.value("num_hidden_layers", c.num_layers);
    c.max_positions = j.value("max_position_embeddings", c.max_positions);
    c.vocab_size = j.value("vocab_size", c.vocab_size);
    c.layer_norm_eps = j.value("layer_norm_eps", c.layer_norm_eps);
    // CLIP-L's config also names a projection_dim, but only the *WithProjection
    // architectures have the weight.
    if (j.contains("architectures") && j["architectures"].is_array())
      for (auto& a : j["architectures"])
        if (a.is_string() && a.get<std::string>().find("WithProjection") != std::string::npos)
          c.projection_dim = j.value("projection_dim", int64_t{0});
    std::string act = j.value("hidden_act", std::string("quick_gelu"));
    if (act == "quick_gelu") c.act = Act::kQuickGelu;
    else if (act == "gelu") c.act = Act::kGelu;
    else if (act == "gelu_new" || act == "gelu_pytorch_tanh") c.act = Act::kGeluTanh;
    else fail(ErrorCode::kUnsupportedModel, "text encoder activation '" + act + "' is not supported");
  } catch (const nlohmann::json::exception& e) {
    fail(ErrorCode::kCorruptFile, "'" + path + "' has a field of the wrong type: " + e.what());
  }
  if (c.hidden_size <= 0 || c.num_heads <= 0 || c.hidden_size % c.num_heads || c.num_layers <= 0)
    fail(ErrorCode::kCorruptFile, "'" + path + "' has inconsistent sizes");
  return c;
}

ClipTextModel::ClipTextModel(const ClipTextConfig& cfg, const WeightStore& w, const std::string& p, bool lazy)
    : cfg_(cfg), src_(w), prefix_(p) {
  if (lazy) load_weights(/*check_only=*/true);
  else w_ = load_weights();
}

std::unique_ptr<ClipTextModel::Weights> ClipTextModel::load_weights(bool check_only) const {
  const WeightStore& w = src_;
  const std::string& p = prefix_;
  const int64_t c = cfg_.hidden_size, f = cfg_.intermediate_size;
  // check_only: the same names and shapes are checked, nothing is converted.
  auto get = [&](const std::string& n, const Shape& shape) {
    if (check_only) {
      w.check(n, shape);
      return Tensor();
    }
    return w.get(n, shape);
  };
  auto out = std::make_unique<Weights>();
  out->tok_emb = get(p + "text_model.embeddings.token_embedding.weight", {cfg_.vocab_size, c});
  out->pos_emb = get(p + "text_model.embeddings.position_embedding.weight", {cfg_.max_positions, c});
  out->final_w = get(p + "text_model.final_layer_norm.weight", {c});
  out->final_b = get(p + "text_model.final_layer_norm.bias", {c});
  if (cfg_.projection_dim > 0) {
    const int64_t pd = cfg_.projection_dim;
    Tensor proj = get(p + "text_projection.weight", cfg_.projection_transposed ? Shape{c, pd} : Shape{pd, c});
    if (!check_only && !cfg_.projection_transposed) {  // [P,C] -> [C,P]
      Tensor t = Tensor::unpooled({c, pd});
      for (int64_t i = 0; i < pd; ++i)
        for (int64_t k = 0; k < c; ++k) t.data()[k * pd + i] = proj.data()[i * c + k];
      proj = t;
    }
    out->projection = proj;
  }
  for (int64_t i = 0; i < cfg_.num_layers; ++i) {
    std::string l = p + "text_model.encoder.layers." + std::to_string(i) + ".";
    Layer L;
    L.ln1_w = get(l + "layer_norm1.weight", {c});
    L.ln1_b = get(l + "layer_norm1.bias", {c});
    L.ln2_w = get(l + "layer_norm2.weight", {c});
    L.ln2_b = get(l + "layer_norm2.bias", {c});
    auto lin = [&](const std::string& n, int64_t o, int64_t in) {
      const auto& reg = w.layer_registry();
      if (check_only) {
        w.check(l + n + ".weight", {o, in});
        w.check(l + n + ".bias", {o});
        // the slot exists from load on, so LoRAs can be checked before the first prompt
        if (reg) reg->get_or_add((l + n).substr(p.size()), {o, in}, weight_source(w, l + n + ".weight", {o, in}));
        return Linear();
      }
      Linear out = w.compute_bf16() ? Linear(w.get_bf16(l + n + ".weight", {o, in}), o, in, w.get(l + n + ".bias", {o}))
                                    : Linear(w.get(l + n + ".weight", {o, in}), w.get(l + n + ".bias", {o}));
      // LoRA slot under the module name without the store prefix; a slot from an
      // earlier rebuild is reused, so patched weights survive release_weights()
      if (reg)
        out.attach_patch(reg->get_or_add((l + n).substr(p.size()), {o, in}, weight_source(w, l + n + ".weight", {o, in})));
      return out;
    };
    L.q = lin("self_attn.q_proj", c, c);
    L.k = lin("self_attn.k_proj", c, c);
    L.v = lin("self_attn.v_proj", c, c);
    L.out = lin("self_attn.out_proj", c, c);
    L.fc1 = lin("mlp.fc1", f, c);
    L.fc2 = lin("mlp.fc2", c, f);
    out->layers.push_back(std::move(L));
  }
  return out;
}

const ClipTextModel::Weights& ClipTextModel::ensure_weights() const {
  if (!w_) w_ = load_weights();
  return *w_;
}

bool ClipTextModel::weights_loaded() const {
  std::lock_guard<std::mutex> lock(mu_);
  return w_ != nullptr;
}

void ClipTextModel::release_weights() const {
  std::lock_guard<std::mutex> lock(mu_);
  w_.reset();
}

Tensor ClipTextModel::hidden_after(const std::vector<std::vector<int32_t>>& ids, int64_t n_layers) const {
  std::lock_guard<std::mutex> lock(mu_);
  Tensor h = run_layers(ensure_weights(), ids, n_layers);
  if (!keep_) w_.reset();
  return h;
}

Tensor ClipTextModel::run_layers(const Weights& w, const std::vector<std::vector<int32_t>>& ids, int64_t n_layers,
                                 int64_t capture_at, Tensor* captured) const {
  const int64_t b = static_cast<int64_t>(ids.size()), c = cfg_.hidden_size;
  const int64_t t = b ? static_cast<int64_t>(ids[0].size()) : 0;
  if (t == 0 || t > cfg_.max_positions)
    fail(ErrorCode::kInvalidArgument, "token sequence length " + std::to_string(t) +
                                          " is outside 1.." + std::to_string(cfg_.max_positions));
  Tensor x({b, t, c});
  for (int64_t i = 0; i < b; ++i) {
    if (static_cast<int64_t>(ids[i].size()) != t)
      fail(ErrorCode::kInvalidArgument, "token rows have different lengths");
    for (int64_t j = 0; j < t; ++j) {
      int32_t id = ids[i][j];
      if (id < 0 || id >= cfg_.vocab_size)
        fail(ErrorCode::kInvalidArgument, "token id " + std::to_string(id) + " is outside the vocabulary");
      float* dst = x.data() + (i * t + j) * c;
      const float* te = w.tok_emb.data() + id * c;
      const float* pe = w.pos_emb.data() + j * c;
      for (int64_t k = 0; k < c; ++k) dst[k] = te[k] + pe[k];
    }
  }
  for (int64_t li = 0; li < n_layers && li < cfg_.num_layers; ++li) {
    if (captured && li == capture_at) *captured = x.clone();
    const Layer& L = w.layers[li];
    Tensor h = layer_norm(x, L.ln1_w, L.ln1_b, cfg_.layer_norm_eps);
    Tensor a = attention(L.q.forward(h), L.k.forward(h), L.v.forward(h),
                         static_cast<int>(cfg_.num_heads), /*causal=*/true, L.q.bf16());
    add_inplace(x, L.out.forward(a));
    h = layer_norm(x, L.ln2_w, L.ln2_b, cfg_.layer_norm_eps);
    Tensor m = L.fc1.forward(h);
    activate_inplace(m, cfg_.act);
    add_inplace(x, L.fc2.forward(m));
  }
  if (captured && capture_at >= std::min(n_layers, cfg_.num_layers)) *captured = x.clone();
  return x;
}

Tensor ClipTextModel::hidden_and_pooled(const std::vector<std::vector<int32_t>>& ids, int64_t layers,
                                        Tensor* pooled) const {
  if (layers < 0 || layers > cfg_.num_layers)
    fail(ErrorCode::kInvalidArgument, "the text encoder has " + std::to_string(cfg_.num_layers) +
                                          " layers; clip skip asks for the output of layer " + std::to_string(layers));
  std::lock_guard<std::mutex> lock(mu_);
  const Weights& w = ensure_weights();
  Tensor hidden;
  if (!pooled) {
    hidden = run_layers(w, ids, layers);
  } else {
    Tensor last = run_layers(w, ids, cfg_.num_layers, layers, &hidden);
    last = layer_norm(last, w.final_w, w.final_b, cfg_.layer_norm_eps);
    const int64_t b = last.dim(0), t = last.dim(1), c = cfg_.hidden_size;
    Tensor rows({b, c});
    for (int64_t i = 0; i < b; ++i) {
      // transformers' legacy pooling (eos_token_id 2 in the config): argmax of the ids
      const auto& r = ids[static_cast<size_t>(i)];
      const int64_t pos = std::max_element(r.begin(), r.end()) - r.begin();
      std::copy_n(last.data() + (i * t + pos) * c, c, rows.data() + i * c);
    }
    if (!w.projection.empty()) {
      const int64_t pd = cfg_.projection_dim;
      Tensor out({b, pd});
      sgemm(false, false, b, pd, c, 1.0f, rows.data(), c, w.projection.data(), pd, 0.0f, out.data(), pd);
      rows = out;
    }
    *pooled = rows;
  }
  if (!keep_) w_.reset();
  return hidden;
}

Tensor ClipTextModel::encode(const std::vector<std::vector<int32_t>>& ids, int clip_skip) const {
  if (clip_skip < 1 || clip_skip > cfg_.num_layers)
    fail(ErrorCode::kInvalidArgument, "clip_skip " + std::to_string(clip_skip) + " must be in 1.." +
                                          std::to_string(cfg_.num_layers) + " (1 = last layer)");
  std::lock_guard<std::mutex> lock(mu_);
  const Weights& w = ensure_weights();
  Tensor h = layer_norm(run_layers(w, ids, cfg_.num_layers - (clip_skip - 1)), w.final_w, w.final_b, cfg_.layer_norm_eps);
  if (!keep_) w_.reset();
  return h;
}

}  // namespace vg
