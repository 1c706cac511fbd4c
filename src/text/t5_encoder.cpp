#include "text/t5_encoder.h"

#include "backend/cpu/ops.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "models/config_util.h"
#include "io/atomic_file.h"
#include "models/blocks.h"

namespace vg {

T5Config T5Config::from_json_file(const std::string& path) { return from_json(read_json_file(path, "T5"), path); }

T5Config T5Config::from_json(const nlohmann::json& j, const std::string& path) {
  T5Config c;
  std::string ff, type;
  try {
    c.d_model = j.value("d_model", c.d_model);
    c.d_kv = j.value("d_kv", c.d_kv);
    c.d_ff = j.value("d_ff", c.d_ff);
    c.num_layers = j.value("num_layers", c.num_layers);
    c.num_heads = j.value("num_heads", c.num_heads);
    c.relative_attention_num_buckets =
        j.value("relative_attention_num_buckets", c.relative_attention_num_buckets);
    c.relative_attention_max_distance =
        j.value("relative_attention_max_distance", c.relative_attention_max_distance);
    c.vocab_size = j.value("vocab_size", c.vocab_size);
    c.layer_norm_epsilon = j.value("layer_norm_epsilon", c.layer_norm_epsilon);
    ff = j.value("feed_forward_proj", std::string("relu"));
    type = j.value("model_type", std::string("t5"));
  } catch (const nlohmann::json::exception& e) {
    fail(ErrorCode::kCorruptFile, "'" + path + "' has a field of the wrong type: " + e.what());
  }
  if (type == "umt5")
    c.per_layer_bias = true;
  else if (type != "t5")
    fail(ErrorCode::kUnsupportedModel,
         "'" + path + "' is a '" + type + "' model; only t5 and umt5 encoders are supported");
  // transformers: "gated-<act>" or "<act>"; "gated-gelu" means gelu_new
  std::string act = ff;
  c.gated = ff.rfind("gated-", 0) == 0;
  if (c.gated) act = ff.substr(6);
  if (ff == "gated-gelu" || act == "gelu_new" || act == "gelu_pytorch_tanh")
    c.act = Act::kGeluTanh;
  else if (act == "relu")
    c.act = Act::kRelu;
  else if (act == "gelu")
    c.act = Act::kGelu;
  else if (act == "silu" || act == "swish")
    c.act = Act::kSilu;
  else
    fail(ErrorCode::kUnsupportedModel, "'" + path + "': feed_forward_proj '" + ff +
                                           "' is not supported (gated-gelu, relu, gelu, silu are)");
  if (c.d_model <= 0 || c.d_kv <= 0 || c.d_ff <= 0 || c.num_layers <= 0 || c.num_heads <= 0 ||
      c.vocab_size <= 0 || c.relative_attention_num_buckets < 4 ||
      c.relative_attention_max_distance < c.relative_attention_num_buckets / 4)
    fail(ErrorCode::kCorruptFile,
         "'" + path + "' has inconsistent sizes; re-download the text encoder's config.json");
  return c;
}

int64_t t5_relative_bucket(int64_t rel, int64_t num_buckets, int64_t max_distance) {
  const int64_t nb = num_buckets / 2, max_exact = nb / 2;
  int64_t bucket = rel > 0 ? nb : 0;
  const int64_t n = rel < 0 ? -rel : rel;
  if (n < max_exact) return bucket + n;
  // float32 like torch: log(n / max_exact) / log(max_distance / max_exact) * (nb - max_exact), truncated
  const float denom = static_cast<float>(std::log(static_cast<double>(max_distance) / max_exact));
  const float v = std::log(static_cast<float>(n) / static_cast<float>(max_exact)) / denom *
                  static_cast<float>(nb - max_exact);
  return bucket + std::min(max_exact + static_cast<int64_t>(v), nb - 1);
}

T5Encoder::T5Encoder(const T5Config& cfg, const WeightStore& w, const std::string& p, bool lazy)
    : cfg_(cfg), src_(w), prefix_(p) {
  // every name and shape is checked now, so a wrong file fails at load, not at the first prompt
  check_shape(embed_name(), {cfg_.vocab_size, cfg_.d_model});
  for (int64_t i = 0; i < cfg_.num_layers; ++i) load_block(i, /*check_only=*/true);
  check_shape(prefix_ + "encoder.final_layer_norm.weight", {cfg_.d_model});
  if (!lazy) {
    std::lock_guard<std::mutex> lock(mu_);
    w_ = std::make_unique<Weights>();
    w_->embed = src_.get(embed_name(), {cfg_.vocab_size, cfg_.d_model});
    w_->final_ln = src_.get(prefix_ + "encoder.final_layer_norm.weight", {cfg_.d_model});
    for (int64_t i = 0; i < cfg_.num_layers; ++i) w_->blocks.push_back(load_block(i, false));
  }
}

void T5Encoder::check_shape(const std::string& n, const Shape& s) const {
  // exact shapes (WeightStore::check accepts any shape of the same size), named with the config's widths
  const TensorInfo* ti = src_.find(n);
  if (!ti && !src_.has(n))
    fail(ErrorCode::kShapeMismatch,
         "T5 weight '" + n + "' is missing from " + src_.describe() + "; these are not the weights of a " +
             std::to_string(cfg_.num_layers) + "-block T5 encoder as config.json describes");
  if (!ti) {
    src_.check(n, s);  // synthetic store: records the request
    return;
  }
  if (ti->shape != s)
    fail(ErrorCode::kShapeMismatch, "T5 weight '" + n + "' has shape " + shape_str(ti->shape) +
                                        " but config.json (d_model " + std::to_string(cfg_.d_model) + ", " +
                                        std::to_string(cfg_.num_heads) + " heads x d_kv " +
                                        std::to_string(cfg_.d_kv) + ", d_ff " + std::to_string(cfg_.d_ff) +
                                        ", vocab " + std::to_string(cfg_.vocab_size) + ") needs " +
                                        shape_str(s) + "; config.json and the weights disagree");
}

std::string T5Encoder::embed_name() const {
  const std::string e = prefix_ + "encoder.embed_tokens.weight";
  return src_.find(e) ? e : prefix_ + "shared.weight";
}

std::unique_ptr<T5Encoder::Block> T5Encoder::load_block(int64_t i, bool check_only) const {
  const std::string b = prefix_ + "encoder.block." + std::to_string(i) + ".layer.";
  const int64_t d = cfg_.d_model, inner = cfg_.num_heads * cfg_.d_kv, ff = cfg_.d_ff;
  auto check = [&](const std::string& n, const Shape& s) { check_shape(n, s); };
  auto blk = std::make_unique<Block>();
  auto lin = [&](const std::string& n, int64_t out, int64_t in) {
    check(n + ".weight", {out, in});
    return check_only ? Linear() : load_linear(src_, n, out, in, /*bias=*/false);
  };
  auto vec = [&](const std::string& n, const Shape& s) {
    check(n, s);
    return check_only ? Tensor() : src_.get(n, s);
  };
  blk->ln_attn = vec(b + "0.layer_norm.weight", {d});
  blk->q = lin(b + "0.SelfAttention.q", inner, d);
  blk->k = lin(b + "0.SelfAttention.k", inner, d);
  blk->v = lin(b + "0.SelfAttention.v", inner, d);
  blk->o = lin(b + "0.SelfAttention.o", d, inner);
  if (i == 0 || cfg_.per_layer_bias)
    blk->rel_bias = vec(b + "0.SelfAttention.relative_attention_bias.weight",
                        {cfg_.relative_attention_num_buckets, cfg_.num_heads});
  blk->ln_ff = vec(b + "1.layer_norm.weight", {d});
  if (cfg_.gated) {
    blk->wi0 = lin(b + "1.DenseReluDense.wi_0", ff, d);
    blk->wi1 = lin(b + "1.DenseReluDense.wi_1", ff, d);
  } else {
    blk->wi0 = lin(b + "1.DenseReluDense.wi", ff, d);
  }
  blk->wo = lin(b + "1.DenseReluDense.wo", d, ff);
  return blk;
}

bool T5Encoder::weights_loaded() const {
  std::lock_guard<std::mutex> lock(mu_);
  return w_ != nullptr;
}

void T5Encoder::release_weights() const {
  std::lock_guard<std::mutex> lock(mu_);
  w_.reset();
}

Tensor T5Encoder::position_bias(const Tensor& table, int64_t s) const {
  const int64_t h = cfg_.num_heads;
  std::vector<int64_t> bucket(2 * s - 1);  // by key - query + s - 1
  for (int64_t r = -(s - 1); r <= s - 1; ++r)
    bucket[r + s - 1] =
        t5_relative_bucket(r, cfg_.relative_attention_num_buckets, cfg_.relative_attention_max_distance);
  Tensor bias({h, s, s});
  for (int64_t hh = 0; hh < h; ++hh)
    for (int64_t q = 0; q < s; ++q)
      for (int64_t k = 0; k < s; ++k)
        bias.data()[(hh * s + q) * s + k] = table.data()[bucket[k - q + s - 1] * h + hh];
  return bias;
}

namespace {

// softmax(q k^T + bias) v per (batch, head), unscaled as T5 is; keys at or past valid[b] are masked out.
Tensor t5_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& bias, int64_t heads,
                    const std::vector<int64_t>& valid) {
  const int64_t b = q.dim(0), s = q.dim(1), c = q.dim(2), d = c / heads;
  Tensor out({b, s, c});
#pragma omp parallel
  {
    std::vector<float> sc(static_cast<size_t>(s * s));
#pragma omp for schedule(dynamic)
    for (int64_t bh = 0; bh < b * heads; ++bh) {
      const int64_t bi = bh / heads, h = bh % heads, len = valid[bi];
      const float* bp = bias.data() + h * s * s;
      for (int64_t r = 0; r < s; ++r) std::copy_n(bp + r * s, len, sc.data() + r * len);
      const int64_t off = bi * s * c + h * d;
      sgemm(false, true, s, len, d, 1.0f, q.data() + off, c, k.data() + off, c, 1.0f, sc.data(), len);
      for (int64_t r = 0; r < s; ++r) {
        float* row = sc.data() + r * len;
        const float mx = *std::max_element(row, row + len);
        float sum = 0;
        for (int64_t j = 0; j < len; ++j) sum += (row[j] = std::exp(row[j] - mx));
        const float inv = 1.0f / sum;
        for (int64_t j = 0; j < len; ++j) row[j] *= inv;
      }
      sgemm(false, false, s, d, len, 1.0f, sc.data(), len, v.data() + off, c, 0.0f, out.data() + off, c);
    }
  }
  return out;
}

void activate(Tensor& x, T5Config::Act a) {
  float* p = x.data();
  const int64_t n = x.numel();
  switch (a) {
    case T5Config::Act::kRelu:
      for (int64_t i = 0; i < n; ++i) p[i] = std::max(p[i], 0.0f);
      return;
    case T5Config::Act::kGeluTanh:
      activate_inplace(x, vg::Act::kGeluTanh);
      return;
    case T5Config::Act::kGelu:
      activate_inplace(x, vg::Act::kGelu);
      return;
    case T5Config::Act::kSilu:
      activate_inplace(x, vg::Act::kSilu);
      return;
  }
}

}  // namespace

Tensor T5Encoder::run(const std::vector<std::vector<int32_t>>& ids, const std::vector<int64_t>* valid,
                      int64_t n_blocks, bool final_norm) const {
  const int64_t b = static_cast<int64_t>(ids.size()), c = cfg_.d_model;
  const int64_t s = b ? static_cast<int64_t>(ids[0].size()) : 0;
  if (s == 0)
    fail(ErrorCode::kInvalidArgument, "the T5 encoder needs at least one row of at least one token");
  std::vector<int64_t> lens(static_cast<size_t>(b), s);
  if (valid) {
    if (static_cast<int64_t>(valid->size()) != b)
      fail(ErrorCode::kInvalidArgument, "the attention mask has " + std::to_string(valid->size()) +
                                            " lengths for " + std::to_string(b) + " token rows");
    for (int64_t i = 0; i < b; ++i) {
      if ((*valid)[i] < 1 || (*valid)[i] > s)
        fail(ErrorCode::kInvalidArgument,
             "valid length " + std::to_string((*valid)[i]) + " is outside 1.." + std::to_string(s));
      lens[i] = (*valid)[i];
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (!w_) {
    w_ = std::make_unique<Weights>();
    w_->embed = src_.get(embed_name(), {cfg_.vocab_size, c});
    w_->final_ln = src_.get(prefix_ + "encoder.final_layer_norm.weight", {c});
  }
  Weights& w = *w_;
  w.blocks.resize(static_cast<size_t>(cfg_.num_layers));
  Tensor x({b, s, c});
  for (int64_t i = 0; i < b; ++i) {
    if (static_cast<int64_t>(ids[i].size()) != s)
      fail(ErrorCode::kInvalidArgument, "token rows have different lengths");
    for (int64_t j = 0; j < s; ++j) {
      const int32_t id = ids[i][j];
      if (id < 0 || id >= cfg_.vocab_size)
        fail(ErrorCode::kInvalidArgument, "token id " + std::to_string(id) +
                                              " is outside the T5 vocabulary (" +
                                              std::to_string(cfg_.vocab_size) + ")");
      std::copy_n(w.embed.data() + id * c, c, x.data() + (i * s + j) * c);
    }
  }
  Tensor bias;
  for (int64_t li = 0; li < std::min(n_blocks, cfg_.num_layers); ++li) {
    std::unique_ptr<Block> made;
    const Block* blk = w.blocks[li].get();
    if (!blk) {  // made now; kept only with keep_ (otherwise one block's weights at a time)
      made = load_block(li, false);
      blk = made.get();
      if (keep_) w.blocks[li] = std::move(made);
    }
    if (!blk->rel_bias.empty()) bias = position_bias(blk->rel_bias, s);
    Tensor h = rms_norm(x, blk->ln_attn, cfg_.layer_norm_epsilon);
    Tensor a =
        t5_attention(blk->q.forward(h), blk->k.forward(h), blk->v.forward(h), bias, cfg_.num_heads, lens);
    add_inplace(x, blk->o.forward(a));
    h = rms_norm(x, blk->ln_ff, cfg_.layer_norm_epsilon);
    Tensor g = blk->wi0.forward(h);
    activate(g, cfg_.act);
    if (cfg_.gated) {
      Tensor u = blk->wi1.forward(h);
      for (int64_t i = 0; i < g.numel(); ++i) g.data()[i] *= u.data()[i];
    }
    add_inplace(x, blk->wo.forward(g));
  }
  if (final_norm) x = rms_norm(x, w.final_ln, cfg_.layer_norm_epsilon);
  if (!keep_) w_.reset();
  return x;
}

Tensor T5Encoder::encode(const std::vector<std::vector<int32_t>>& ids) const {
  return run(ids, nullptr, cfg_.num_layers, true);
}

Tensor T5Encoder::encode(const std::vector<std::vector<int32_t>>& ids,
                         const std::vector<int64_t>& valid_lengths) const {
  return run(ids, &valid_lengths, cfg_.num_layers, true);
}

Tensor T5Encoder::hidden_after(const std::vector<std::vector<int32_t>>& ids, int64_t blocks) const {
  if (blocks < 0 || blocks > cfg_.num_layers)
    fail(ErrorCode::kInvalidArgument,
         "the T5 encoder has " + std::to_string(cfg_.num_layers) + " blocks, not " + std::to_string(blocks));
  return run(ids, nullptr, blocks, false);
}

}  // namespace vg
