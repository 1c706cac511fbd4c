// The normalizers of a Hugging Face tokenizer.json that sentencepiece-based
// tokenizers declare: Precompiled (sentencepiece's charsmap, per grapheme as
// the tokenizers library applies it), Replace, Strip, Prepend, Sequence.
#pragma once
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

namespace vg {

struct HfNormalizer {
  virtual ~HfNormalizer() = default;
  virtual std::string apply(const std::string& s) const = 0;
};

// Appends the steps of tokenizer.json's "normalizer" `n` (null: none; a
// Sequence is flattened). `path` names the file in error messages.
void add_hf_normalizer(const nlohmann::json& n, const std::string& path,
                       std::vector<std::shared_ptr<const HfNormalizer>>* out);

}  // namespace vg
