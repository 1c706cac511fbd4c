// CLIP byte-level BPE tokenizer that behaves like transformers' slow
// CLIPTokenizer without ftfy: special-token split, BERT-style cleaning, NFC,
// lowercasing, CLIP's pre-tokenizer regex, BPE merges, BOS/EOS/pad to 77.
#pragma once
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace vg {

class ClipTokenizer {
 public:
  // dir holds vocab.json, merges.txt and optionally tokenizer_config.json /
  // special_tokens_map.json (bos/eos/pad token strings).
  static ClipTokenizer load(const std::string& dir);

  // Ids without BOS/EOS, untruncated.
  std::vector<int32_t> encode(const std::string& text) const;
  // BOS + first (max_length-2) ids + EOS, padded with pad to max_length.
  std::vector<int32_t> encode_padded(const std::string& text) const;
  // The BPE token strings (for debugging/tests).
  std::vector<std::string> tokenize(const std::string& text) const;

  int32_t bos_id() const { return bos_; }
  int32_t eos_id() const { return eos_; }
  int32_t pad_id() const { return pad_; }
  int max_length() const { return max_length_; }
  // SD2 pads with "!" (id 0) where CLIP-L pads with <|endoftext|>.
  void set_pad_token(const std::string& token);

 private:
  std::vector<std::string> bpe(const std::string& word) const;
  void tokenize_chunk(const std::string& text, std::vector<std::string>* out) const;

  std::unordered_map<std::string, int32_t> vocab_;
  std::unordered_map<std::string, int32_t> merge_rank_;  // "a b" -> rank
  std::string byte_to_unicode_[256];
  int32_t bos_ = 49406, eos_ = 49407, pad_ = 49407;
  int max_length_ = 77;
  std::string bos_str_ = "<|startoftext|>", eos_str_ = "<|endoftext|>";
  mutable std::unordered_map<std::string, std::vector<std::string>> cache_;
};

}  // namespace vg
