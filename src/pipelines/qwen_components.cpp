#include "pipelines/qwen_components.h"

#include <map>
#include <nlohmann/json.hpp>
#include <regex>

#include "core/error.h"
#include "io/atomic_file.h"
#include "io/tensor_file.h"
#include "models/config_util.h"
#include "pipelines/ldm_common.h"

namespace vg {

namespace {

// transformers' Qwen names -> llama.cpp's (GGUF conversions of Qwen3 / Qwen2.5).
std::string qwen_to_llama(const std::string& n) {
  static const std::regex layer(R"(^layers\.(\d+)\.(.+)\.(weight|bias)$)");
  static const std::map<std::string, std::string> parts = {
      {"input_layernorm", "attn_norm"},   {"post_attention_layernorm", "ffn_norm"},
      {"self_attn.q_proj", "attn_q"},     {"self_attn.k_proj", "attn_k"},
      {"self_attn.v_proj", "attn_v"},     {"self_attn.o_proj", "attn_output"},
      {"self_attn.q_norm", "attn_q_norm"}, {"self_attn.k_norm", "attn_k_norm"},
      {"mlp.gate_proj", "ffn_gate"},      {"mlp.up_proj", "ffn_up"},
      {"mlp.down_proj", "ffn_down"}};
  if (n == "embed_tokens.weight") return "token_embd.weight";
  if (n == "norm.weight") return "output_norm.weight";
  std::smatch m;
  if (!std::regex_match(n, m, layer)) return n;
  auto it = parts.find(m[2].str());
  return it == parts.end() ? n : "blk." + m[1].str() + "." + it->second + "." + m[3].str();
}

bool has_chat_template(const std::string& dir) {
  if (path_exists(dir + "/chat_template.jinja") || path_exists(dir + "/chat_template.json")) return true;
  const std::string cfg = dir + "/tokenizer_config.json";
  if (!path_exists(cfg)) return false;
  const nlohmann::json j = read_json_file(cfg, "tokenizer");
  return j.contains("chat_template") && !j["chat_template"].is_null();
}

}  // namespace

std::unique_ptr<QwenTextEncoder> load_qwen_component(const ComponentRef& c, bool bf16, const char* what) {
  std::shared_ptr<TensorFile> gguf;
  if (!is_folder(c.path) && path_exists(c.path)) {
    auto file = open_tensor_file(c.path);
    if (file->has("blk.0.attn_q.weight") && file->has("token_embd.weight")) gguf = file;  // llama.cpp names
  }
  WeightStore w = gguf ? renamed_store(gguf, qwen_to_llama) : open_component(c, what);
  w.set_compute_bf16(bf16);
  const std::string prefix = qwen_text_prefix(w);
  const std::string json = first_config({is_folder(c.path) ? c.path : std::string(), c.config_dir});
  const QwenTextConfig cfg = json.empty() ? QwenTextConfig::from_weights(w, prefix) : QwenTextConfig::from_json_file(json);
  return std::make_unique<QwenTextEncoder>(cfg, w, prefix, /*lazy=*/true);
}

std::unique_ptr<QwenTokenizer> load_qwen_tokenizer(std::initializer_list<std::string> candidates,
                                                   const std::string& family, bool chat_template) {
  for (const std::string& d : candidates) {
    if (d.empty() || !(path_exists(d + "/tokenizer.json") || (path_exists(d + "/vocab.json") && path_exists(d + "/merges.txt"))))
      continue;
    auto tok = std::make_unique<QwenTokenizer>(QwenTokenizer::from_dir(d));
    if (tok->token_id("<|im_start|>") < 0 || tok->token_id("<|im_end|>") < 0)
      fail(ErrorCode::kInvalidArgument, "the tokenizer in '" + d + "' has no <|im_start|>/<|im_end|> tokens, so it "
                                        "cannot hold the chat template " + family + " wraps prompts in; pass the "
                                        "model's own Qwen tokenizer folder with --tokenizer");
    if (chat_template && !has_chat_template(d))
      fail(ErrorCode::kInvalidArgument, "the tokenizer in '" + d + "' has no chat template (tokenizer_config.json "
                                        "chat_template), which " + family + " applies to every prompt; pass the "
                                        "model's own tokenizer folder with --tokenizer");
    return tok;
  }
  fail(ErrorCode::kMissingComponent, "no Qwen tokenizer (tokenizer.json, or vocab.json + merges.txt) was found for "
                                     "this " + family + " model; pass --tokenizer with the model's tokenizer folder "
                                     "or --config with its diffusers folder");
}

}  // namespace vg
