#include "text/byte_bpe.h"

#include <climits>

#include "text/utf8_util.h"

namespace vg {

namespace {

std::string cp_to_utf8(uint32_t cp) {
  std::string s;
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else if (cp < 0x800) {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    s += static_cast<char>(0xE0 | (cp >> 12));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    s += static_cast<char>(0xF0 | (cp >> 18));
    s += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}

bool printable_byte(int b) {
  return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

}  // namespace

const std::array<std::string, 256>& gpt2_byte_to_unicode() {
  static const std::array<std::string, 256> table = [] {
    std::array<std::string, 256> t;
    for (int b = 0, n = 0; b < 256; ++b) t[b] = cp_to_utf8(printable_byte(b) ? b : 256 + n++);
    return t;
  }();
  return table;
}

std::string byte_level_map(const std::string& bytes) {
  const auto& t = gpt2_byte_to_unicode();
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) out += t[c];
  return out;
}

std::vector<std::string> utf8_chars(const std::string& s) {
  std::vector<std::string> out;
  for (size_t i = 0; i < s.size();) {
    const size_t n = utf8_char_len(s, i);
    out.push_back(s.substr(i, n));
    i += n;
  }
  return out;
}

void BpeRanks::add(const std::string& left, const std::string& right) {
  rank_.emplace(left + " " + right, next_++);
}

bool BpeRanks::add_line(const std::string& line) {
  const size_t sp = line.find(' ');
  if (sp == std::string::npos || sp == 0) return false;
  rank_.emplace(line, next_++);
  return true;
}

std::vector<std::string> BpeRanks::merge(std::vector<std::string> word) const {
  while (word.size() > 1) {
    int best = INT_MAX;
    size_t best_i = 0;
    for (size_t i = 0; i + 1 < word.size(); ++i) {
      auto m = rank_.find(word[i] + " " + word[i + 1]);
      if (m != rank_.end() && m->second < best) {
        best = m->second;
        best_i = i;
      }
    }
    if (best == INT_MAX) break;
    const std::string first = word[best_i], second = word[best_i + 1];
    std::vector<std::string> merged;
    merged.reserve(word.size());
    for (size_t i = 0; i < word.size();) {
      if (i + 1 < word.size() && word[i] == first && word[i + 1] == second) {
        merged.push_back(first + second);
        i += 2;
      } else {
        merged.push_back(word[i++]);
      }
    }
    word.swap(merged);
  }
  return word;
}

}  // namespace vg
