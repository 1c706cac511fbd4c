// Qwen2 byte-level BPE tokenizer, as transformers' Qwen2TokenizerFast (the
// tokenizers library) behaves: added/special tokens cut out of the raw text
// first, then NFC, the Qwen2 split regex, GPT-2 byte mapping and BPE by merge
// rank. Qwen3 (Z-Image) and Qwen2.5-VL (Qwen-Image) share it.
#pragma once
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "text/byte_bpe.h"

namespace vg {

// How a pipeline wraps the prompt before tokenizing: prefix + prompt + suffix.
struct QwenPromptTemplate {
  std::string prefix, suffix;
  // Leading tokens (the prefix) the pipeline drops from the encoder's output
  // (Qwen-Image: its 34-token system prompt; Z-Image: none).
  int drop_tokens = 0;
  // Z-Image: apply_chat_template(user turn, add_generation_prompt, enable_thinking=True).
  static QwenPromptTemplate zimage();
  // Qwen-Image's hard-coded system-prompt template (drops 34 tokens).
  static QwenPromptTemplate qwen_image();
  std::string apply(const std::string& prompt) const { return prefix + prompt + suffix; }
};

class QwenTokenizer {
 public:
  // dir holds tokenizer.json, or vocab.json + merges.txt (+ tokenizer_config.json
  // for the added tokens and the eos/pad token names). tokenizer.json wins when both exist.
  static QwenTokenizer from_dir(const std::string& dir);
  // tokenizer.json (+ the tokenizer_config.json beside it, when present, for eos/pad).
  static QwenTokenizer from_tokenizer_json(const std::string& path);
  static QwenTokenizer from_vocab_merges(const std::string& vocab_json, const std::string& merges_txt,
                                         const std::string& tokenizer_config_json = "");
  // Without added tokens in tokenizer_config.json (added_tokens_decoder) or an
  // added_tokens.json beside it, Qwen2's 14 special tokens follow the vocabulary.

  // Plain tokenization (no BOS/EOS, untruncated).
  std::vector<int32_t> encode(const std::string& text) const;
  // The token strings (byte-level stand-ins; added tokens as written).
  std::vector<std::string> tokenize(const std::string& text) const;
  // tmpl.apply(prompt) tokenized and cut to max_len tokens (the tail goes, as
  // transformers truncates), unpadded.
  std::vector<int32_t> encode_chat(const std::string& prompt, int max_len,
                                   const QwenPromptTemplate& tmpl = QwenPromptTemplate::zimage()) const;
  // encode_chat padded with pad_id() to max_len; *mask (optional) gets 1 per
  // real token and 0 per pad, as padding="max_length" makes them.
  std::vector<int32_t> encode_chat_padded(
      const std::string& prompt, int max_len, std::vector<int32_t>* mask,
      const QwenPromptTemplate& tmpl = QwenPromptTemplate::zimage()) const;

  // Id of a token string (vocabulary or added token), or -1.
  int32_t token_id(const std::string& token) const;
  int32_t pad_id() const { return pad_; }
  int32_t eos_id() const { return eos_; }
  // Largest id + 1 (vocabulary plus added tokens).
  int32_t vocab_size() const { return vocab_size_; }

 private:
  void add_token(const std::string& content, int32_t id);
  void finish(const std::string& eos, const std::string& pad, const std::string& source);
  void tokenize_chunk(const std::string& text, std::vector<std::string>* out) const;
  std::vector<std::string> bpe(const std::string& mapped) const;

  std::unordered_map<std::string, int32_t> vocab_;
  std::unordered_map<std::string, int32_t> added_;  // matched literally in the raw text
  std::vector<std::string> added_by_length_;        // longest first
  BpeRanks ranks_;
  int32_t pad_ = -1, eos_ = -1, vocab_size_ = 0;
};

}  // namespace vg
