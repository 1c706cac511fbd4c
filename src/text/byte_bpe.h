// Pieces shared by the byte-level BPE tokenizers (CLIP, Qwen2): GPT-2's
// byte -> unicode stand-in map and BPE merging by merge rank.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace vg {

// GPT-2's bytes_to_unicode: each byte's stand-in character, as UTF-8
// (printable bytes keep their code point, the rest map to 256 + n).
const std::array<std::string, 256>& gpt2_byte_to_unicode();
// Every byte of `bytes` replaced by its stand-in (the ByteLevel pre-tokenizer's mapping).
std::string byte_level_map(const std::string& bytes);
// The code points of a UTF-8 string, each as its own UTF-8 string.
std::vector<std::string> utf8_chars(const std::string& s);

// Merge ranks ("a b" -> order in merges.txt; lower merges first).
class BpeRanks {
 public:
  // Appends a merge with the next rank (a repeated pair keeps its first rank).
  void add(const std::string& left, const std::string& right);
  // "left right" as merges.txt writes it; false when it has no separating space.
  bool add_line(const std::string& line);
  int size() const { return static_cast<int>(rank_.size()); }
  // Merges the symbols of one word: repeatedly the lowest-ranked adjacent pair,
  // every occurrence left to right, until no pair has a rank.
  std::vector<std::string> merge(std::vector<std::string> word) const;

 private:
  std::unordered_map<std::string, int> rank_;
  int next_ = 0;
};

}  // namespace vg
