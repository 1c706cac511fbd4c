// CLIP byte-level BPE tokenizer that behaves like transformers' CLIPTokenizer
// without ftfy (slow by default, fast on request): special-token split,
// BERT-style cleaning (slow only), NFC, lowercasing, CLIP's pre-tokenizer
// regex, BPE merges, BOS/EOS/pad to 77.
#pragma once
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "text/byte_bpe.h"

namespace vg {

class ClipTokenizer {
 public:
  // dir holds vocab.json, merges.txt and optionally tokenizer_config.json /
  // special_tokens_map.json (bos/eos/pad token strings).
  static ClipTokenizer load(const std::string& dir);
  // OpenAI's CLIP vocabulary built into the library (vocab derived from the
  // embedded merges, as CLIP's simple_tokenizer does): for single-file
  // checkpoints. SD2 and SDXL's second tokenizer pad with "!" (id 0).
  static ClipTokenizer builtin(const std::string& pad_token = "<|endoftext|>");
  // The built-in vocabulary with the special tokens and model_max_length of a
  // folder's special_tokens_map.json / tokenizer_config.json (either may be absent).
  static ClipTokenizer builtin_with_config(const std::string& config_dir);

  // Ids without BOS/EOS, untruncated. The special token strings in the text
  // (bos, eos and, as transformers does, the pad token: "!" for SD2/SDXL-G)
  // become their ids; split_on_pad false keeps a "!" pad token as plain text,
  // as OpenCLIP's own tokenizer (A1111's SD2/SDXL-G) does.
  std::vector<int32_t> encode(const std::string& text, bool split_on_pad = true) const;
  // BOS + first (max_length-2) ids + EOS, padded with pad to max_length.
  std::vector<int32_t> encode_padded(const std::string& text) const;
  // The BPE token strings (for debugging/tests).
  std::vector<std::string> tokenize(const std::string& text, bool split_on_pad = true) const;

  int32_t bos_id() const { return bos_; }
  int32_t eos_id() const { return eos_; }
  int32_t pad_id() const { return pad_; }
  int max_length() const { return max_length_; }
  // Id of a token string (e.g. ",</w>"), or -1 when it is not in the vocabulary.
  int32_t token_id(const std::string& token) const;
  const std::unordered_map<std::string, int32_t>& vocab() const { return vocab_; }
  // SD2 pads with "!" (id 0) where CLIP-L pads with <|endoftext|>.
  void set_pad_token(const std::string& token);
  // kSlow (default): transformers' slow CLIPTokenizer, whose BERT-style cleaning
  // drops control characters and splits CJK ideographs into words of their own.
  // kFast: the tokenizers (Rust) CLIPTokenizer that transformers >= 5 uses, and
  // OpenAI's own tokenizer: neither. The two differ only on such text.
  enum class Flavor { kSlow, kFast };
  void set_flavor(Flavor f) { flavor_ = f; }
  Flavor flavor() const { return flavor_; }

 private:
  // Ranks the merges (at most CLIP's 48894, after the '#version' line); returns the pairs in order.
  std::vector<std::string> read_merges(const std::string& text, const std::string& source);
  // bos/eos/pad/max length from the folder's config files; returns the pad token string.
  std::string read_special_tokens(const std::string& dir);
  void resolve_special_ids(const std::string& pad_str, const std::string& source);
  std::vector<std::string> bpe(const std::string& word) const;
  void tokenize_chunk(const std::string& text, std::vector<std::string>* out) const;

  std::unordered_map<std::string, int32_t> vocab_;
  BpeRanks ranks_;
  int32_t bos_ = 49406, eos_ = 49407, pad_ = 49407;
  int max_length_ = 77;
  Flavor flavor_ = Flavor::kSlow;
  std::string bos_str_ = "<|startoftext|>", eos_str_ = "<|endoftext|>", pad_str_ = "<|endoftext|>";
  mutable std::unordered_map<std::string, std::vector<std::string>> cache_;
};

}  // namespace vg
