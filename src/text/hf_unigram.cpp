#include "text/hf_unigram.h"

#include <algorithm>
#include <limits>
#include <nlohmann/json.hpp>
#include <regex>

#include "core/error.h"
#include "text/hf_normalizers.h"
#include "text/utf8_util.h"

namespace vg {

HfUnigram HfUnigram::from_json(const nlohmann::json& j, const std::string& path) {
  HfUnigram u;
  try {
    const auto& model = j.at("model");
    const std::string type = model.value("type", std::string("Unigram"));
    if (type != "Unigram")
      fail(ErrorCode::kUnsupportedModel,
           "'" + path + "' holds a " + type + " model; a T5 tokenizer.json must hold a Unigram model");
    double min_score = std::numeric_limits<double>::infinity();
    for (const auto& e : model.at("vocab")) {
      u.vocab_.emplace_back(e.at(0).get<std::string>(), e.at(1).get<double>());
      const auto& [piece, score] = u.vocab_.back();
      min_score = std::min(min_score, score);
      if (piece.empty()) continue;
      u.piece_id_[piece] = static_cast<int32_t>(u.vocab_.size() - 1);
      u.max_piece_bytes_ = std::max(u.max_piece_bytes_, piece.size());
    }
    if (u.vocab_.empty())
      fail(ErrorCode::kCorruptFile, "'" + path + "' has an empty vocabulary; re-download it");
    u.unk_score_ = min_score - 10.0;  // tokenizers' K_UNK_PENALTY
    if (model.contains("unk_id") && !model["unk_id"].is_null()) u.unk_id_ = model["unk_id"].get<int32_t>();
    u.byte_fallback_ = model.value("byte_fallback", false);
    if (j.contains("normalizer")) add_hf_normalizer(j["normalizer"], path, &u.normalizers_);
    std::vector<nlohmann::json> pre;
    if (j.contains("pre_tokenizer") && !j["pre_tokenizer"].is_null()) {
      const auto& p = j["pre_tokenizer"];
      if (p.value("type", std::string()) == "Sequence")
        pre.assign(p.at("pretokenizers").begin(), p.at("pretokenizers").end());
      else
        pre.push_back(p);
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
        u.prepend_ = scheme == "first"   ? Prepend::kFirst
                     : scheme == "never" ? Prepend::kNever
                                         : Prepend::kAlways;
      } else {
        fail(ErrorCode::kUnsupportedModel,
             "'" + path + "' uses the pre-tokenizer '" + t +
                 "', which is not implemented; put the model's spiece.model next to it");
      }
    }
    if (j.contains("added_tokens"))
      for (const auto& a : j["added_tokens"])
        u.added_.push_back({a.at("content").get<std::string>(), a.at("id").get<int32_t>(),
                            a.value("lstrip", false), a.value("rstrip", false)});
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
          if (start != std::string::npos)
            split.push_back({w.s.substr(start, i - start), w.origin && start == 0});
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
      if (!starts && (prepend_ == Prepend::kAlways || (prepend_ == Prepend::kFirst && w.origin)))
        s = replacement_ + s;
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
    for (size_t end = start + mblen; end <= n && end - start <= max_piece_bytes_;
         end += utf8_char_len(s, end)) {
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
