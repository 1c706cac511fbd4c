// The Qwen language-model text encoders and tokenizers of Z-Image (Qwen3)
// and Qwen-Image (Qwen2.5-VL) as users hold them: a diffusers text_encoder
// folder, ComfyUI's single files (qwen_3_4b.safetensors,
// qwen_2.5_vl_7b*.safetensors), or llama.cpp GGUF files (blk.N.attn_q ...).
#pragma once
#include <memory>
#include <string>

#include "pipelines/dit_components.h"
#include "text/qwen_encoder.h"
#include "text/qwen_tokenizer.h"

namespace vg {

// A lazy Qwen text encoder (weights converted on first use, released after encoding).
std::unique_ptr<QwenTextEncoder> load_qwen_component(const ComponentRef& c, bool bf16, const char* what);

// The first of `candidates` holding tokenizer.json or vocab.json + merges.txt;
// else missing_component naming what to pass. `chat_template`: the pipeline
// wraps prompts with the tokenizer's chat template (Z-Image): a tokenizer
// without one, or without <|im_start|>/<|im_end|>, is refused.
std::unique_ptr<QwenTokenizer> load_qwen_tokenizer(std::initializer_list<std::string> candidates,
                                                   const std::string& family, bool chat_template);

}  // namespace vg
