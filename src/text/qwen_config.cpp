// QwenTextConfig from tensor shapes, and where a file keeps the language model.
#include "core/error.h"
#include "models/config_util.h"
#include "text/qwen_encoder.h"

namespace vg {

std::string qwen_text_prefix(const WeightStore& w) {
  for (const char* p : {"", "model.", "model.language_model.", "language_model.model."})
    if (w.find(std::string(p) + "embed_tokens.weight")) return p;
  fail(ErrorCode::kCorruptFile, "text encoder weights " + w.describe() +
                                    " have no embed_tokens.weight; this is not a Qwen language model (Qwen3 / "
                                    "Qwen2.5-VL) file");
}

QwenTextConfig QwenTextConfig::from_weights(const WeightStore& w, const std::string& prefix) {
  const std::string what = "Qwen text encoder";
  QwenTextConfig c;
  const Shape& emb = weight_shape(w, prefix + "embed_tokens.weight", 2, what);
  c.vocab_size = emb[0];
  c.hidden_size = emb[1];
  c.num_layers = count_blocks(w, prefix + "layers.", ".self_attn.q_proj.weight");
  const std::string l0 = prefix + "layers.0.";
  c.intermediate_size = weight_shape(w, l0 + "mlp.gate_proj.weight", 2, what)[0];
  const TensorInfo* qn = w.find(l0 + "self_attn.q_norm.weight");
  c.model_type = qn ? "qwen3" : "qwen2_5_vl";
  c.head_dim = qn && qn->shape.size() == 1 ? qn->shape[0] : 128;
  const int64_t q = weight_shape(w, l0 + "self_attn.q_proj.weight", 2, what)[0];
  const int64_t kv = weight_shape(w, l0 + "self_attn.k_proj.weight", 2, what)[0];
  if (c.num_layers == 0 || q % c.head_dim || kv % c.head_dim || (q / c.head_dim) % (kv / c.head_dim))
    fail(ErrorCode::kCorruptFile, "text encoder weights " + w.describe() + ": q/k widths " + std::to_string(q) + "/" +
                                      std::to_string(kv) + " do not split into heads of " +
                                      std::to_string(c.head_dim) + "; pass a Qwen3 or Qwen2.5-VL text encoder");
  c.num_heads = q / c.head_dim;
  c.num_kv_heads = kv / c.head_dim;
  return c;
}

}  // namespace vg
