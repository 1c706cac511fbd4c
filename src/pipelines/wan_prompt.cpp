#include "pipelines/wan_prompt.h"

#include <algorithm>
#include <cstring>

#include "text/prompt_clean.h"

namespace vg {

Tensor wan_prompt_states(const T5Encoder& enc, const std::vector<int32_t>& ids, int64_t valid) {
  Tensor h = enc.encode({ids}, {valid});
  const int64_t d = h.dim(2);
  const int64_t keep = std::clamp<int64_t>(valid, 0, h.dim(1));
  std::memset(h.data() + keep * d, 0, static_cast<size_t>((h.dim(1) - keep) * d) * sizeof(float));
  return h;
}

Tensor wan_encode_prompt(const T5Tokenizer& tok, const T5Encoder& enc, const std::string& prompt, int max_len,
                         std::vector<std::string>* warnings) {
  const std::string cleaned = wan_prompt_clean(prompt);
  const std::vector<int32_t> ids = tok.encode_padded(cleaned, max_len);
  const size_t full = tok.encode(cleaned).size() + 1;  // with </s>
  if (full > static_cast<size_t>(max_len) && warnings)
    warnings->push_back("the prompt is " + std::to_string(full) + " UMT5 tokens; only the first " +
                        std::to_string(max_len) + " are used (--max-sequence-length), as diffusers truncates");
  const int64_t valid = static_cast<int64_t>(std::min(full, ids.size()));
  return wan_prompt_states(enc, ids, valid);
}

}  // namespace vg
