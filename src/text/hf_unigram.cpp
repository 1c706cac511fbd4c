#include "text/hf_unigram.h"

#include <unicode/brkiter.h>
#include <unicode/utext.h>

#include <algorithm>
#include <limits>
#include <nlohmann/json.hpp>
#include <regex>

#include "core/error.h"
#include "text/utf8_util.h"

namespace vg {

struct HfUnigram::Step {
  virtual ~Step() = default;
  virtual std::string apply(const std::string& s) const = 0;
};

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
    if (v < 0) fail(ErrorCode::kCorruptFile, "'" + path + "': precompiled_charsmap is not base64; re-download the tokenizer");
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
class Precompiled : public HfUnigram::Step {
 public:
  Precompiled(const std::string& blob, const std::string& path) {
    if (blob.size() < 4) fail(ErrorCode::kCorruptFile, "'" + path + "': precompiled_charsmap is truncated; re-download it");
    uint32_t n = 0;
    for (int i = 3; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(blob[i]);
    if (n % 4 || 4 + static_cast<size_t>(n) > blob.size())
      fail(ErrorCode::kCorruptFile, "'" + path + "': precompiled_charsmap has a bad trie size; re-download it");
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
    std::unique_ptr<icu::BreakIterator> it(icu::BreakIterator::createCharacterInstance(icu::Locale::getRoot(), st));
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

class Replace : public HfUnigram::Step {
 public:
  Replace(const nlohmann::json& j) : content_(j.value("content", std::string())) {
    const auto& p = j.at("pattern");
    if (p.contains("Regex")) regex_ = std::regex(p["Regex"].get<std::string>());
    else literal_ = p.at("String").get<std::string>();
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

class Strip : public HfUnigram::Step {
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

class Prepend : public HfUnigram::Step {
 public:
  explicit Prepend(std::string p) : p_(std::move(p)) {}
  std::string apply(const std::string& s) const override { return s.empty() ? s : p_ + s; }

 private:
  std::string p_;
};

void add_normalizer(const nlohmann::json& n, const std::string& path,
                    std::vector<std::shared_ptr<const HfUnigram::Step>>* out) {
  if (n.is_null()) return;
  const std::string type = n.at("type").get<std::string>();
  if (type == "Sequence") {
    for (const auto& s : n.at("normalizers")) add_normalizer(s, path, out);
  } else if (type == "Precompiled") {
    const auto& m = n.at("precompiled_charsmap");
    if (!m.is_null()) out->push_back(std::make_shared<Precompiled>(base64_decode(m.get<std::string>(), path), path));
  } else if (type == "Replace") {
    out->push_back(std::make_shared<Replace>(n));
  } else if (type == "Strip") {
    out->push_back(std::make_shared<Strip>(n.value("strip_left", true), n.value("strip_right", true)));
  } else if (type == "Prepend") {
    out->push_back(std::make_shared<Prepend>(n.at("prepend").get<std::string>()));
  } else {
    fail(ErrorCode::kUnsupportedModel, "'" + path + "' uses the normalizer '" + type +
                                           "', which is not implemented; put the model's spiece.model next to it");
  }
}

}  // namespace

HfUnigram HfUnigram::from_json(const nlohmann::json& j, const std::string& path) {
  HfUnigram u;
  try {
    const auto& model = j.at("model");
    const std::string type = model.value("type", std::string("Unigram"));
    if (type != "Unigram")
      fail(ErrorCode::kUnsupportedModel, "'" + path + "' holds a " + type +
                                             " model; a T5 tokenizer.json must hold a Unigram model");
    double min_score = std::numeric_limits<double>::infinity();
    for (const auto& e : model.at("vocab")) {
      u.vocab_.emplace_back(e.at(0).get<std::string>(), e.at(1).get<double>());
      const auto& [piece, score] = u.vocab_.back();
      min_score = std::min(min_score, score);
      if (piece.empty()) continue;
      u.piece_id_[piece] = static_cast<int32_t>(u.vocab_.size() - 1);
      u.max_piece_bytes_ = std::max(u.max_piece_bytes_, piece.size());
    }
    if (u.vocab_.empty()) fail(ErrorCode::kCorruptFile, "'" + path + "' has an empty vocabulary; re-download it");
    u.unk_score_ = min_score - 10.0;  // tokenizers' K_UNK_PENALTY
    if (model.contains("unk_id") && !model["unk_id"].is_null()) u.unk_id_ = model["unk_id"].get<int32_t>();
    u.byte_fallback_ = model.value("byte_fallback", false);
    if (j.contains("normalizer")) add_normalizer(j["normalizer"], path, &u.normalizers_);
    std::vector<nlohmann::json> pre;
    if (j.contains("pre_tokenizer") && !j["pre_tokenizer"].is_null()) {
      const auto& p = j["pre_tokenizer"];
      if (p.value("type", std::string()) == "Sequence") pre.assign(p.at("pretokenizers").begin(), p.at("pretokenizers").end());
      else pre.push_back(p);
    }
    for (const auto& p : pre) {
      const std::string t = p.at("type").get<std::string>();
      if (t == "WhitespaceSplit") {
        u.whitespace_split_ = true;
      } else if (t == "Metaspace") {
        u.metaspace_ = true;
        u.replacement_ = p.value("replacement", u.replacement_);
        u.metaspace_split_ = p.value("split", true);
        std::string scheme = p.value("prepend_scheme", std::string());
        if (scheme.empty()) scheme = p.value("add_prefix_space", true) ? "always" : "never";
        u.prepend_ = scheme == "first" ? Prepend::kFirst : scheme == "never" ? Prepend::kNever : Prepend::kAlways;
      } else {
        fail(ErrorCode::kUnsupportedModel, "'" + path + "' uses the pre-tokenizer '" + t +
                                               "', which is not implemented; put the model's spiece.model next to it");
      }
    }
    if (j.contains("added_tokens"))
      for (const auto& a : j["added_tokens"])
        u.added_.push_back({a.at("content").get<std::string>(), a.at("id").get<int32_t>(), a.value("lstrip", false),
                            a.value("rstrip", false)});
  } catch (const nlohmann::json::exception& e) {
    fail(ErrorCode::kCorruptFile, "'" + path + "' is not a tokenizer.json the tokenizers library writes (" +
                                      e.what() + "); re-download it");
  } catch (const std::regex_error& e) {
    fail(ErrorCode::kCorruptFile, "'" + path + "' has a Replace pattern std::regex cannot read: " + e.what());
  }
  if (u.unk_id_ < 0 || u.unk_id_ >= static_cast<int32_t>(u.vocab_.size()))
    fail(ErrorCode::kCorruptFile, "'" + path + "' has no valid unk_id; re-download it");
  return u;
}

int32_t HfUnigram::token_id(const std::string& piece) const {
  for (const auto& a : added_)
    if (a.content == piece) return a.id;
  auto it = piece_id_.find(piece);
  return it == piece_id_.end() ? -1 : it->second;
}

int HfUnigram::vocab_size() const {
  int n = static_cast<int>(vocab_.size());
  for (const auto& a : added_) n = std::max(n, a.id + 1);
  return n;
}

std::string HfUnigram::normalize(const std::string& s) const {
  std::string out = s;
  for (const auto& n : normalizers_) out = n->apply(out);
  return out;
}

void HfUnigram::encode_segment(const std::string& text, bool at_origin, std::vector<int32_t>* out) const {
  struct Word {
    std::string s;
    bool origin;
  };
  std::vector<Word> words{{normalize(text), at_origin}};
  if (whitespace_split_) {
    std::vector<Word> split;
    for (const auto& w : words) {
      size_t start = std::string::npos;
      for (size_t i = 0; i <= w.s.size();) {
        const bool end = i == w.s.size();
        const size_t len = end ? 1 : utf8_char_len(w.s, i);
        if (end || is_unicode_whitespace(utf8_decode(w.s, i))) {
          if (start != std::string::npos) split.push_back({w.s.substr(start, i - start), w.origin && start == 0});
          start = std::string::npos;
        } else if (start == std::string::npos) {
          start = i;
        }
        i += len;
      }
    }
    words = std::move(split);
  }
  if (metaspace_) {
    std::vector<Word> split;
    for (auto& w : words) {
      std::string s;
      for (char c : w.s) s += c == ' ' ? replacement_ : std::string(1, c);
      const bool starts = s.compare(0, replacement_.size(), replacement_) == 0;
      if (!starts && (prepend_ == Prepend::kAlways || (prepend_ == Prepend::kFirst && w.origin))) s = replacement_ + s;
      if (!metaspace_split_) {
        split.push_back({s, w.origin});
        continue;
      }
      size_t b = 0;  // each replacement starts a new word (MergedWithNext)
      for (size_t p = s.find(replacement_, 1); p != std::string::npos; p = s.find(replacement_, p + 1)) {
        if (p > b) split.push_back({s.substr(b, p - b), false});
        b = p;
      }
      if (b < s.size()) split.push_back({s.substr(b), false});
    }
    words = std::move(split);
  }
  for (const auto& w : words)
    if (!w.s.empty()) viterbi(w.s, out);
}

void HfUnigram::viterbi(const std::string& s, std::vector<int32_t>* out) const {
  struct Node {
    int32_t id = -1;
    size_t start = 0;
    double score = 0;
    bool set = false;
  };
  const size_t n = s.size();
  std::vector<Node> best(n + 1);
  best[0].set = true;
  for (size_t start = 0; start < n;) {
    const size_t mblen = utf8_char_len(s, start);
    if (!best[start].set) {  // cannot happen: every character has at least the unk node
      start += mblen;
      continue;
    }
    const double base = best[start].score;
    bool has_single = false;
    // candidate pieces in increasing length, updated on a strictly better score (tokenizers' order)
    for (size_t end = start + mblen; end <= n && end - start <= max_piece_bytes_; end += utf8_char_len(s, end)) {
      auto it = piece_id_.find(s.substr(start, end - start));
      if (it != piece_id_.end()) {
        const double cand = base + vocab_[it->second].second;
        Node& t = best[end];
        if (!t.set || cand > t.score) t = {it->second, start, cand, true};
        if (end - start == mblen) has_single = true;
      }
      if (end == n) break;
    }
    if (!has_single) {
      Node& t = best[start + mblen];
      const double cand = base + unk_score_;
      if (!t.set || cand > t.score) t = {unk_id_, start, cand, true};
    }
    start += mblen;
  }
  std::vector<std::pair<int32_t, size_t>> toks;  // (id, start), reversed
  for (size_t pos = n; pos > 0; pos = best[pos].start) toks.emplace_back(best[pos].id, best[pos].start);
  std::reverse(toks.begin(), toks.end());
  int32_t prev = -1;
  for (size_t i = 0; i < toks.size(); ++i) {
    const int32_t id = toks[i].first;
    if (id == unk_id_ && byte_fallback_) {
      const size_t e = i + 1 < toks.size() ? toks[i + 1].second : n;
      std::vector<int32_t> bytes;
      for (size_t b = toks[i].second; b < e; ++b) {
        char hex[8];
        std::snprintf(hex, sizeof hex, "<0x%02X>", static_cast<uint8_t>(s[b]));
        auto it = piece_id_.find(hex);
        if (it == piece_id_.end()) break;
        bytes.push_back(it->second);
      }
      if (bytes.size() == e - toks[i].second) {
        out->insert(out->end(), bytes.begin(), bytes.end());
        prev = -1;
        continue;
      }
    }
    if (id == unk_id_ && prev == unk_id_) continue;  // fuse_unk: runs of unknowns are one <unk>
    out->push_back(id);
    prev = id;
  }
}

}  // namespace vg
