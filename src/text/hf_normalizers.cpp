#include "text/hf_normalizers.h"

#include <unicode/brkiter.h>
#include <unicode/utext.h>

#include <nlohmann/json.hpp>
#include <regex>

#include "core/error.h"
#include "text/utf8_util.h"

namespace vg {

namespace {

std::string base64_decode(const std::string& in, const std::string& path) {
  auto val = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
  };
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    if (c == '=' || c == '\n' || c == '\r') continue;
    int v = val(c);
    if (v < 0)
      fail(ErrorCode::kCorruptFile,
           "'" + path + "': precompiled_charsmap is not base64; re-download the tokenizer");
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  return out;
}

// sentencepiece's precompiled charsmap: <uint32 trie bytes><darts double array><NUL-separated replacements>,
// applied per grapheme cluster as the tokenizers library's Precompiled normalizer does.
class Precompiled : public HfNormalizer {
 public:
  Precompiled(const std::string& blob, const std::string& path) {
    if (blob.size() < 4)
      fail(ErrorCode::kCorruptFile, "'" + path + "': precompiled_charsmap is truncated; re-download it");
    uint32_t n = 0;
    for (int i = 3; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(blob[i]);
    if (n % 4 || 4 + static_cast<size_t>(n) > blob.size())
      fail(ErrorCode::kCorruptFile,
           "'" + path + "': precompiled_charsmap has a bad trie size; re-download it");
    trie_.resize(n / 4);
    for (size_t i = 0; i < trie_.size(); ++i) {
      uint32_t u = 0;
      for (int b = 3; b >= 0; --b) u = (u << 8) | static_cast<uint8_t>(blob[4 + i * 4 + b]);
      trie_[i] = u;
    }
    normalized_ = blob.substr(4 + n);
  }

  std::string apply(const std::string& s) const override {
    std::string out;
    UErrorCode st = U_ZERO_ERROR;
    UText* ut = utext_openUTF8(nullptr, s.data(), static_cast<int64_t>(s.size()), &st);
    std::unique_ptr<icu::BreakIterator> it(
        icu::BreakIterator::createCharacterInstance(icu::Locale::getRoot(), st));
    if (U_FAILURE(st) || !it) {
      if (ut) utext_close(ut);
      fail(ErrorCode::kInternal, "ICU grapheme segmentation is unavailable");
    }
    it->setText(ut, st);
    for (int32_t b = it->first(), e = it->next(); e != icu::BreakIterator::DONE; b = e, e = it->next()) {
      const std::string g = s.substr(b, e - b);
      const char* norm = nullptr;
      if (g.size() < 6 && (norm = transform(g))) {
        out += norm;
        continue;
      }
      for (size_t i = 0; i < g.size();) {
        const size_t len = utf8_char_len(g, i);
        const std::string c = g.substr(i, len);
        norm = transform(c);
        out += norm ? std::string(norm) : c;
        i += len;
      }
    }
    utext_close(ut);
    return out;
  }

 private:
  // The first (shortest) prefix of `chunk` the trie holds, as the tokenizers crate takes it.
  const char* transform(const std::string& chunk) const {
    auto unit = [&](size_t pos) -> uint32_t { return pos < trie_.size() ? trie_[pos] : 0xFFFFFFFFu; };
    auto offset = [](uint32_t u) -> size_t { return (u >> 10) << ((u & (1u << 9)) >> 6); };
    if (trie_.empty()) return nullptr;
    size_t pos = offset(unit(0));
    for (unsigned char c : chunk) {
      pos ^= c;
      const uint32_t u = unit(pos);
      if ((u & ((1u << 31) | 0xFFu)) != c) return nullptr;
      pos ^= offset(u);
      if ((u >> 8) & 1) {
        const size_t v = unit(pos) & ((1u << 31) - 1);
        return v < normalized_.size() ? normalized_.c_str() + v : nullptr;
      }
    }
    return nullptr;
  }
  std::vector<uint32_t> trie_;
  std::string normalized_;
};

class Replace : public HfNormalizer {
 public:
  Replace(const nlohmann::json& j) : content_(j.value("content", std::string())) {
    const auto& p = j.at("pattern");
    if (p.contains("Regex"))
      regex_ = std::regex(p["Regex"].get<std::string>());
    else
      literal_ = p.at("String").get<std::string>();
    is_regex_ = p.contains("Regex");
  }
  std::string apply(const std::string& s) const override {
    if (is_regex_) return std::regex_replace(s, regex_, content_);
    if (literal_.empty()) return s;
    std::string out;
    for (size_t i = 0; i < s.size();) {
      if (s.compare(i, literal_.size(), literal_) == 0) {
        out += content_;
        i += literal_.size();
      } else {
        out += s[i++];
      }
    }
    return out;
  }

 private:
  std::string content_, literal_;
  std::regex regex_;
  bool is_regex_ = false;
};

class Strip : public HfNormalizer {
 public:
  Strip(bool left, bool right) : left_(left), right_(right) {}
  std::string apply(const std::string& s) const override {
    size_t b = 0, e = s.size();
    while (left_ && b < e) {
      const size_t len = utf8_char_len(s, b);
      if (!is_unicode_whitespace(utf8_decode(s, b))) break;
      b += len;
    }
    while (right_ && e > b) {
      size_t p = e - 1;
      while (p > b && (static_cast<uint8_t>(s[p]) & 0xC0) == 0x80) --p;
      if (!is_unicode_whitespace(utf8_decode(s, p))) break;
      e = p;
    }
    return s.substr(b, e - b);
  }

 private:
  bool left_, right_;
};

class Prepend : public HfNormalizer {
 public:
  explicit Prepend(std::string p) : p_(std::move(p)) {}
  std::string apply(const std::string& s) const override { return s.empty() ? s : p_ + s; }

 private:
  std::string p_;
};

}  // namespace

void add_hf_normalizer(const nlohmann::json& n, const std::string& path,
                       std::vector<std::shared_ptr<const HfNormalizer>>* out) {
  if (n.is_null()) return;
  const std::string type = n.at("type").get<std::string>();
  if (type == "Sequence") {
    for (const auto& s : n.at("normalizers")) add_hf_normalizer(s, path, out);
  } else if (type == "Precompiled") {
    const auto& m = n.at("precompiled_charsmap");
    if (!m.is_null())
      out->push_back(std::make_shared<Precompiled>(base64_decode(m.get<std::string>(), path), path));
  } else if (type == "Replace") {
    out->push_back(std::make_shared<Replace>(n));
  } else if (type == "Strip") {
    out->push_back(std::make_shared<Strip>(n.value("strip_left", true), n.value("strip_right", true)));
  } else if (type == "Prepend") {
    out->push_back(std::make_shared<Prepend>(n.at("prepend").get<std::string>()));
  } else {
    fail(ErrorCode::kUnsupportedModel,
         "'" + path + "' uses the normalizer '" + type +
             "', which is not implemented; put the model's spiece.model next to it");
  }
}

}  // namespace vg
