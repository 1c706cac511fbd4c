// AUTOMATIC1111's prompt syntax: attention weights "(a)", "[a]", "(a:1.3)",
// escapes "\(", and BREAK; 75-token chunking with the comma backtrack; and
// the "Original" emphasis applied to the text encoder's output.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace vg {

class ClipTokenizer;

// A1111 prompt_parser.parse_prompt_attention: (text, weight) pieces, equal-weight
// neighbours merged, BREAK as ("BREAK", -1). Brackets left open still apply to
// the rest of the prompt; unmatched closers are literal text. A weight A1111
// could not parse (e.g. "(a:..)", where A1111 raises) is kept as literal text.
std::vector<std::pair<std::string, float>> parse_prompt_attention(const std::string& text);

// One 77-token window: BOS + 75 prompt/pad tokens + EOS, with per-token weights
// (1.0 at BOS, EOS and padding).
struct PromptChunk {
  std::vector<int32_t> ids;
  std::vector<float> weights;
};

// A1111 tokenize_line + process_tokens' padding: pieces are tokenized
// separately (no BOS/EOS) and packed into 75-token chunks; when a chunk fills
// and its last comma is at most `comma_backtrack` tokens back, the tokens after
// that comma move to the next chunk (0 disables it); BREAK closes the chunk.
// Padding is EOS, then every position after the first EOS becomes the
// tokenizer's pad id (differs from EOS for SD2 / SDXL's second tokenizer).
// An empty prompt gives one chunk.
std::vector<PromptChunk> a1111_chunks(const ClipTokenizer& tok, const std::string& prompt,
                                      int comma_backtrack = 20);

// A1111 "Original" emphasis on one chunk's hidden states z ([1,T,C] or [T,C],
// weights.size() == T): z *= weight per token, then z *= mean_before / mean_after.
void apply_emphasis(Tensor& z, const std::vector<float>& weights);

}  // namespace vg
