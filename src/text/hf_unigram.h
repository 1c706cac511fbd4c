// The unigram model of a Hugging Face tokenizer.json (T5/UMT5 "fast"
// tokenizers), for folders without spiece.model: the declared normalizer
// (Precompiled sentencepiece charsmap, Replace, Strip, Prepend, Sequence),
// pre-tokenizer (WhitespaceSplit, Metaspace, Sequence) and a Viterbi
// segmentation over the vocabulary's scores, as the tokenizers library does.
#pragma once
#include <cstdint>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <unordered_map>
#include <vector>

namespace vg {

struct HfNormalizer;

class HfUnigram {
 public:
  // j: the parsed tokenizer.json; `path` names it in error messages.
  static HfUnigram from_json(const nlohmann::json& j, const std::string& path);

  // Ids of one piece of text that holds no added token. at_origin: the text
  // starts at offset 0 of the caller's input (Metaspace prepend_scheme "first").
  void encode_segment(const std::string& text, bool at_origin, std::vector<int32_t>* out) const;
  // tokenizer.json's added_tokens (content -> id), split out before the model runs.
  struct AddedToken {
    std::string content;
    int32_t id = 0;
    bool lstrip = false, rstrip = false;
  };
  const std::vector<AddedToken>& added_tokens() const { return added_; }
  int32_t token_id(const std::string& piece) const;  // -1 when absent
  int vocab_size() const;

 private:
  std::string normalize(const std::string& s) const;
  void viterbi(const std::string& word, std::vector<int32_t>* out) const;

  std::vector<std::shared_ptr<const HfNormalizer>> normalizers_;
  // pre-tokenizer: whitespace split first?, then Metaspace settings
  bool whitespace_split_ = false, metaspace_ = false, metaspace_split_ = true;
  enum class Prepend { kAlways, kFirst, kNever } prepend_ = Prepend::kAlways;
  std::string replacement_ = "\xE2\x96\x81";  // U+2581
  std::vector<std::pair<std::string, double>> vocab_;
  std::unordered_map<std::string, int32_t> piece_id_;  // Viterbi candidates
  size_t max_piece_bytes_ = 1;
  double unk_score_ = 0;
  int32_t unk_id_ = -1;
  bool byte_fallback_ = false;
  std::vector<AddedToken> added_;
};

}  // namespace vg
