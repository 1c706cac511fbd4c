// T5 / UMT5 tokenizer as transformers' T5TokenizerFast calls it: the special
// tokens written in the text (</s>, <pad>, <unk>, <extra_id_N>) are split out
// first and become their ids; every other piece goes through sentencepiece
// (spiece.model) or, without it, tokenizer.json's unigram model.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace vg {

class HfUnigram;

class T5Tokenizer {
 public:
  // dir: spiece.model (preferred) or tokenizer.json, plus optional
  // tokenizer_config.json / special_tokens_map.json (pad/eos tokens, extra ids).
  static T5Tokenizer from_dir(const std::string& dir);

  // Ids without </s>, untruncated.
  std::vector<int32_t> encode(const std::string& text) const;
  // encode + </s>, truncated to max_len keeping </s> last, padded with pad_id
  // to max_len (transformers: padding="max_length", truncation=True).
  std::vector<int32_t> encode_padded(const std::string& text, int max_len) const;

  int pad_id() const { return pad_; }
  int eos_id() const { return eos_; }
  int vocab_size() const { return vocab_size_; }
  // Which file the ids come from: "spiece.model" or "tokenizer.json".
  const std::string& source() const { return source_; }

 private:
  struct Special {
    std::string text;
    int32_t id;
    bool lstrip = false, rstrip = false;
  };
  void encode_plain(const std::string& text, bool at_origin, std::vector<int32_t>* out) const;
  void add_special(const std::string& text, int32_t id, bool lstrip = false, bool rstrip = false);
  int32_t id_of(const std::string& token) const;  // -1 when unknown

  std::shared_ptr<const sentencepiece::SentencePieceProcessor> sp_;
  std::shared_ptr<const HfUnigram> unigram_;
  std::vector<Special> specials_;  // longest first
  int32_t pad_ = 0, eos_ = 1;
  int vocab_size_ = 0;
  std::string source_;
};

}  // namespace vg
