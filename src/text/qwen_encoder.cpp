#include "text/qwen_encoder.h"

#include <cmath>
#include <nlohmann/json.hpp>

#include "backend/cpu/ops.h"
#include "core/error.h"
#include "models/blocks.h"
#include "models/config_util.h"

namespace vg {

QwenTextConfig QwenTextConfig::from_json_file(const std::string& path) {
  return from_json(read_json_file(path, "Qwen text encoder"), path);
}

QwenTextConfig QwenTextConfig::from_json(const nlohmann::json& root, const std::string& path) {
  // Qwen2.5-VL nests the language model's settings in text_config
  const nlohmann::json& j =
      root.contains("text_config") && root["text_config"].is_object() ? root["text_config"] : root;
  QwenTextConfig c;
  try {
    c.model_type = j.value("model_type", root.value("model_type", c.model_type));
    c.hidden_size = j.value("hidden_size", c.hidden_size);
    c.intermediate_size = j.value("intermediate_size", c.intermediate_size);
    c.num_layers = j.value("num_hidden_layers", c.num_layers);
    c.num_heads = j.value("num_attention_heads", c.num_heads);
    c.num_kv_heads = j.value("num_key_value_heads", c.num_heads);
    c.head_dim = j.contains("head_dim") && j["head_dim"].is_number_integer() ? j["head_dim"].get<int64_t>()
                                                                             : c.hidden_size / c.num_heads;
    c.vocab_size = j.value("vocab_size", c.vocab_size);
    c.rms_norm_eps = j.value("rms_norm_eps", c.rms_norm_eps);
    // transformers >= 5 moves rope_theta (and mrope_section) into rope_parameters; older: top level /
    // rope_scaling
    c.rope_theta = j.value("rope_theta", c.rope_theta);
    for (const char* key : {"rope_parameters", "rope_scaling"}) {
      if (!j.contains(key) || !j[key].is_object()) continue;
      const auto& r = j[key];
      c.rope_theta = r.value("rope_theta", c.rope_theta);
      if (r.contains("mrope_section")) c.mrope_section = r["mrope_section"].get<std::vector<int64_t>>();
      const std::string type = r.value("rope_type", r.value("type", std::string("default")));
      if (type != "default" && type != "mrope")
        fail(ErrorCode::kUnsupportedModel, "'" + path + "' uses RoPE scaling '" + type +
                                               "'; only the default RoPE of Qwen text encoders is supported");
    }
  } catch (const nlohmann::json::exception& e) {
    fail(ErrorCode::kCorruptFile, "'" + path + "' has a field of the wrong type: " + e.what());
  }
  if (c.hidden_size <= 0 || c.intermediate_size <= 0 || c.num_layers <= 0 || c.num_heads <= 0 ||
      c.num_kv_heads <= 0 || c.num_heads % c.num_kv_heads != 0 || c.head_dim <= 0 || c.head_dim % 2 != 0 ||
      c.vocab_size <= 0 || !(c.rope_theta > 0) || !(c.rms_norm_eps > 0))
    fail(ErrorCode::kCorruptFile,
         "'" + path + "' has inconsistent sizes (heads " + std::to_string(c.num_heads) + ", kv heads " +
             std::to_string(c.num_kv_heads) + ", head_dim " + std::to_string(c.head_dim) +
             "); re-download the text encoder's config.json");
  return c;
}

QwenTextEncoder::QwenTextEncoder(const QwenTextConfig& cfg, const WeightStore& w, const std::string& prefix,
                                 bool lazy)
    : cfg_(cfg), src_(w), prefix_(prefix) {
  if (prefix_ == "auto") prefix_ = qwen_text_prefix(src_);
  const std::string l0 = prefix_ + "layers.0.self_attn.";
  qk_norm_ = src_.has(l0 + "q_norm.weight");
  qkv_bias_ = src_.has(l0 + "q_proj.bias");
  check_all();
  if (!lazy) {
    std::lock_guard<std::mutex> lock(mu_);
    w_ = load();
  }
}

void QwenTextEncoder::check_shape(const std::string& n, const Shape& s) const {
  const TensorInfo* ti = src_.find(n);
  if (!ti && !src_.has(n))
    fail(ErrorCode::kShapeMismatch, "Qwen text encoder weight '" + n + "' is missing from " +
                                        src_.describe() + "; these are not the weights of the " +
                                        std::to_string(cfg_.num_layers) + "-layer " + cfg_.model_type +
                                        " model config.json describes");
  if (!ti) {
    src_.check(n, s);  // synthetic store: records the request
    return;
  }
  if (ti->shape != s)
    fail(ErrorCode::kShapeMismatch,
         "Qwen text encoder weight '" + n + "' has shape " + shape_str(ti->shape) +
             " but config.json (hidden " + std::to_string(cfg_.hidden_size) + ", " +
             std::to_string(cfg_.num_heads) + "/" + std::to_string(cfg_.num_kv_heads) + " heads x " +
             std::to_string(cfg_.head_dim) + ", mlp " + std::to_string(cfg_.intermediate_size) + ", vocab " +
             std::to_string(cfg_.vocab_size) + ") needs " + shape_str(s) +
             "; config.json and the weights disagree");
}

void QwenTextEncoder::check_all() const {
  const int64_t d = cfg_.hidden_size, hd = cfg_.head_dim, q = cfg_.num_heads * hd,
                kv = cfg_.num_kv_heads * hd;
  const int64_t ff = cfg_.intermediate_size;
  check_shape(prefix_ + "embed_tokens.weight", {cfg_.vocab_size, d});
  check_shape(prefix_ + "norm.weight", {d});
  for (int64_t i = 0; i < cfg_.num_layers; ++i) {
    const std::string b = prefix_ + "layers." + std::to_string(i) + ".";
    check_shape(b + "input_layernorm.weight", {d});
    check_shape(b + "post_attention_layernorm.weight", {d});
    check_shape(b + "self_attn.q_proj.weight", {q, d});
    check_shape(b + "self_attn.k_proj.weight", {kv, d});
    check_shape(b + "self_attn.v_proj.weight", {kv, d});
    check_shape(b + "self_attn.o_proj.weight", {d, q});
    if (qkv_bias_) {
      check_shape(b + "self_attn.q_proj.bias", {q});
      check_shape(b + "self_attn.k_proj.bias", {kv});
      check_shape(b + "self_attn.v_proj.bias", {kv});
    }
    if (qk_norm_) {
      check_shape(b + "self_attn.q_norm.weight", {hd});
      check_shape(b + "self_attn.k_norm.weight", {hd});
    }
    check_shape(b + "mlp.gate_proj.weight", {ff, d});
    check_shape(b + "mlp.up_proj.weight", {ff, d});
    check_shape(b + "mlp.down_proj.weight", {d, ff});
  }
}

std::unique_ptr<QwenTextEncoder::Weights> QwenTextEncoder::load() const {
  const int64_t d = cfg_.hidden_size, hd = cfg_.head_dim, q = cfg_.num_heads * hd,
                kv = cfg_.num_kv_heads * hd;
  const int64_t ff = cfg_.intermediate_size;
  auto w = std::make_unique<Weights>();
  w->final_norm = src_.get(prefix_ + "norm.weight", {d});
  w->layers.resize(static_cast<size_t>(cfg_.num_layers));
  for (int64_t i = 0; i < cfg_.num_layers; ++i) {
    const std::string b = prefix_ + "layers." + std::to_string(i) + ".";
    Layer& l = w->layers[i];
    l.ln_in = src_.get(b + "input_layernorm.weight", {d});
    l.ln_post = src_.get(b + "post_attention_layernorm.weight", {d});
    l.q = load_linear(src_, b + "self_attn.q_proj", q, d, qkv_bias_);
    l.k = load_linear(src_, b + "self_attn.k_proj", kv, d, qkv_bias_);
    l.v = load_linear(src_, b + "self_attn.v_proj", kv, d, qkv_bias_);
    l.o = load_linear(src_, b + "self_attn.o_proj", d, q, false);
    if (qk_norm_) {
      l.q_norm = src_.get(b + "self_attn.q_norm.weight", {hd});
      l.k_norm = src_.get(b + "self_attn.k_norm.weight", {hd});
    }
    l.gate = load_linear(src_, b + "mlp.gate_proj", ff, d, false);
    l.up = load_linear(src_, b + "mlp.up_proj", ff, d, false);
    l.down = load_linear(src_, b + "mlp.down_proj", d, ff, false);
  }
  return w;
}

bool QwenTextEncoder::weights_loaded() const {
  std::lock_guard<std::mutex> lock(mu_);
  return w_ != nullptr;
}

void QwenTextEncoder::release_weights() const {
  std::lock_guard<std::mutex> lock(mu_);
  w_.reset();
}

Tensor QwenTextEncoder::embed(const std::vector<int32_t>& ids, int64_t n) const {
  const int64_t d = cfg_.hidden_size;
  const std::string name = prefix_ + "embed_tokens.weight";
  Tensor x({n, d});
  const TensorInfo* ti = src_.find(name);
  Tensor table;
  if (!ti || ti->ggml_type >= 0) table = src_.get(name, {cfg_.vocab_size, d});  // synthetic / block types
  for (int64_t i = 0; i < n; ++i) {
    const int32_t id = ids[i];
    if (id < 0 || id >= cfg_.vocab_size)
      fail(ErrorCode::kInvalidArgument,
           "token id " + std::to_string(id) + " is outside the Qwen vocabulary (" +
               std::to_string(cfg_.vocab_size) + "); tokenizer and text encoder do not match");
    if (!table.empty()) {
      std::copy_n(table.data() + id * d, d, x.data() + i * d);
      continue;
    }
    TensorInfo row = *ti;  // one row of the mapped table
    const size_t row_bytes = tensor_bytes(*ti, d);
    row.data = ti->data + static_cast<size_t>(id) * row_bytes;
    row.nbytes = row_bytes;
    row.shape = {d};
    tensor_to_f32(row, x.data() + i * d, static_cast<size_t>(d));
  }
  return x;
}

namespace {

// Rotate-half RoPE on [n, heads*hd] at positions 0..n-1 (cos/sin tables [n, hd/2]).
void apply_rope(Tensor& x, int64_t heads, int64_t hd, const std::vector<float>& cos_t,
                const std::vector<float>& sin_t) {
  const int64_t n = x.dim(0), half = hd / 2;
  for (int64_t p = 0; p < n; ++p)
    for (int64_t h = 0; h < heads; ++h) {
      float* v = x.data() + (p * heads + h) * hd;
      const float* c = cos_t.data() + p * half;
      const float* s = sin_t.data() + p * half;
      for (int64_t i = 0; i < half; ++i) {
        const float a = v[i], b = v[i + half];
        v[i] = a * c[i] - b * s[i];
        v[i + half] = b * c[i] + a * s[i];
      }
    }
}

// [n, kv*hd] -> [n, kv*groups*hd]: each KV head repeated for the query heads it serves.
Tensor repeat_kv(const Tensor& x, int64_t kv, int64_t groups, int64_t hd) {
  if (groups == 1) return x;
  const int64_t n = x.dim(0);
  Tensor out({n, kv * groups * hd});
  for (int64_t p = 0; p < n; ++p)
    for (int64_t h = 0; h < kv; ++h)
      for (int64_t g = 0; g < groups; ++g)
        std::copy_n(x.data() + (p * kv + h) * hd, hd, out.data() + ((p * kv + h) * groups + g) * hd);
  return out;
}

}  // namespace

Tensor QwenTextEncoder::hidden_states(const std::vector<int32_t>& ids, int64_t valid_len,
                                      int layer_index) const {
  const int64_t total = static_cast<int64_t>(cfg_.num_layers) + 1;
  const int64_t idx = layer_index < 0 ? layer_index + total : layer_index;
  if (idx < 0 || idx >= total)
    fail(ErrorCode::kInvalidArgument, "hidden state " + std::to_string(layer_index) +
                                          " does not exist: the " + cfg_.model_type + " text encoder has " +
                                          std::to_string(total) + " (embeddings and " +
                                          std::to_string(cfg_.num_layers) + " layers)");
  if (valid_len < 1 || valid_len > static_cast<int64_t>(ids.size()))
    fail(ErrorCode::kInvalidArgument, "valid length " + std::to_string(valid_len) + " is outside 1.." +
                                          std::to_string(ids.size()) +
                                          "; the text encoder needs at least one token");
  const int64_t n = valid_len, hd = cfg_.head_dim, half = hd / 2;
  const int64_t hq = cfg_.num_heads, hkv = cfg_.num_kv_heads;
  Tensor x = embed(ids, n);
  if (idx == 0) return x;

  // RoPE tables as transformers makes them in float32: inv_freq = 1 / theta^(2i/hd), angle = pos * inv_freq
  std::vector<float> cos_t(static_cast<size_t>(n * half)), sin_t(cos_t.size());
  for (int64_t i = 0; i < half; ++i) {
    const float expo = static_cast<float>(2 * i) / static_cast<float>(hd);
    const float inv = 1.0f / static_cast<float>(std::pow(cfg_.rope_theta, static_cast<double>(expo)));
    for (int64_t p = 0; p < n; ++p) {
      const float a = static_cast<float>(p) * inv;
      cos_t[p * half + i] = std::cos(a);
      sin_t[p * half + i] = std::sin(a);
    }
  }

  std::lock_guard<std::mutex> lock(mu_);
  if (!w_) w_ = load();
  const Weights& w = *w_;
  const bool bf16 = src_.compute_bf16();
  const int64_t run_layers = std::min<int64_t>(idx, cfg_.num_layers);
  for (int64_t li = 0; li < run_layers; ++li) {
    const Layer& l = w.layers[li];
    Tensor h = rms_norm(x, l.ln_in, cfg_.rms_norm_eps);
    Tensor q = l.q.forward(h), k = l.k.forward(h), v = l.v.forward(h);
    if (qk_norm_) {  // per head, before RoPE
      rms_norm_rows(q.data(), n * hq, hd, l.q_norm.data(), cfg_.rms_norm_eps, q.data());
      rms_norm_rows(k.data(), n * hkv, hd, l.k_norm.data(), cfg_.rms_norm_eps, k.data());
    }
    apply_rope(q, hq, hd, cos_t, sin_t);
    apply_rope(k, hkv, hd, cos_t, sin_t);
    const int64_t groups = hq / hkv;
    Tensor kf = repeat_kv(k, hkv, groups, hd), vf = repeat_kv(v, hkv, groups, hd);
    Tensor a = attention(q.reshape({1, n, hq * hd}), kf.reshape({1, n, hq * hd}), vf.reshape({1, n, hq * hd}),
                         static_cast<int>(hq), /*causal=*/true, bf16)
                   .reshape({n, hq * hd});
    add_inplace(x, l.o.forward(a));
    h = rms_norm(x, l.ln_post, cfg_.rms_norm_eps);
    Tensor g = l.gate.forward(h);
    activate_inplace(g, Act::kSilu);
    Tensor u = l.up.forward(h);
    for (int64_t i = 0; i < g.numel(); ++i) g.data()[i] *= u.data()[i];
    add_inplace(x, l.down.forward(g));
  }
  if (idx == cfg_.num_layers) x = rms_norm(x, w.final_norm, cfg_.rms_norm_eps);
  return x;
}

}  // namespace vg
