// Wan's prompt encoding (diffusers' WanPipeline._get_t5_prompt_embeds):
// prompt_clean, UMT5 ids with </s> padded to max_sequence_length, the encoder
// run with the attention mask, and the rows past the prompt set to zero (the
// transformer still sees them: it has no text mask).
#pragma once
#include <string>
#include <vector>

#include "text/t5_encoder.h"
#include "text/t5_tokenizer.h"

namespace vg {

// States [1, ids.size(), d_model] of the first `valid` ids, zeros after.
Tensor wan_prompt_states(const T5Encoder& enc, const std::vector<int32_t>& ids, int64_t valid);

// The whole path from text; a warning when the prompt is cut to `max_len` tokens.
Tensor wan_encode_prompt(const T5Tokenizer& tok, const T5Encoder& enc, const std::string& prompt, int max_len,
                         std::vector<std::string>* warnings);

}  // namespace vg
