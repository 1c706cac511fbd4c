#include "text/t5_tokenizer.h"

#include <sentencepiece_processor.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/atomic_file.h"
#include "text/hf_unigram.h"
#include "text/utf8_util.h"

namespace vg {

namespace {

nlohmann::json read_json_or_null(const std::string& path) {
  if (!path_exists(path)) return nullptr;
  try {
    return nlohmann::json::parse(read_file(path));
  } catch (const nlohmann::json::exception& e) {
    fail(ErrorCode::kCorruptFile,
         "'" + path + "' is not valid JSON (" + e.what() + "); re-download the tokenizer");
  }
}

// "pad_token": "<pad>" or {"content": "<pad>", ...}
std::string token_string(const nlohmann::json& cfg, const char* key) {
  if (!cfg.is_object() || !cfg.contains(key)) return "";
  const auto& v = cfg[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string())
    return v["content"].get<std::string>();
  return "";
}

}  // namespace

void T5Tokenizer::add_special(const std::string& text, int32_t id, bool lstrip, bool rstrip) {
  if (text.empty()) return;
  for (auto& s : specials_)
    if (s.text == text) {
      s = {text, id, lstrip, rstrip};
      return;
    }
  specials_.push_back({text, id, lstrip, rstrip});
}

int32_t T5Tokenizer::id_of(const std::string& token) const {
  for (const auto& s : specials_)
    if (s.text == token) return s.id;
  if (sp_) {
    const int id = sp_->PieceToId(token);
    return (id == sp_->unk_id() && token != sp_->IdToPiece(id)) ? -1 : id;
  }
  return unigram_ ? unigram_->token_id(token) : -1;
}

T5Tokenizer T5Tokenizer::from_dir(const std::string& dir) {
  T5Tokenizer t;
  const std::string spm = dir + "/spiece.model", tj = dir + "/tokenizer.json";
  const nlohmann::json cfg = read_json_or_null(dir + "/tokenizer_config.json");
  const nlohmann::json map = read_json_or_null(dir + "/special_tokens_map.json");
  if (path_exists(spm)) {
    auto sp = std::make_shared<sentencepiece::SentencePieceProcessor>();
    const auto st = sp->Load(spm);
    if (!st.ok())
      fail(ErrorCode::kCorruptFile, "'" + spm + "' is not a sentencepiece model (" + st.ToString() +
                                        "); re-download the tokenizer folder");
    const int n = sp->GetPieceSize();
    for (int i = 0; i < n; ++i)
      if (sp->IsControl(i) || sp->IsUnknown(i)) t.add_special(sp->IdToPiece(i), i);
    t.vocab_size_ = n;
    bool listed = false;  // added_tokens_decoder names every added token with its id
    try {
      if (cfg.is_object() && cfg.contains("added_tokens_decoder"))
        for (const auto& [id, a] : cfg["added_tokens_decoder"].items()) {
          const int32_t i = std::stoi(id);
          t.add_special(a.at("content").get<std::string>(), i, a.value("lstrip", false),
                        a.value("rstrip", false));
          t.vocab_size_ = std::max(t.vocab_size_, i + 1);
          listed = true;
        }
      if (!listed) {  // T5Tokenizer: <extra_id_i> = vocab_size - 1 - i, after the sentencepiece pieces
        const int extra = cfg.is_object() ? cfg.value("extra_ids", 100) : 100;
        for (int i = 0; i < extra; ++i)
          t.add_special("<extra_id_" + std::to_string(i) + ">", n + extra - 1 - i);
        t.vocab_size_ = n + std::max(extra, 0);
      }
    } catch (const std::exception& e) {
      fail(ErrorCode::kCorruptFile, "'" + dir +
                                        "/tokenizer_config.json' has a malformed added_tokens_decoder (" +
                                        e.what() + "); re-download the tokenizer");
    }
    t.sp_ = sp;
    t.source_ = "spiece.model";
  } else if (path_exists(tj)) {
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(read_file(tj));
    } catch (const nlohmann::json::exception& e) {
      fail(ErrorCode::kCorruptFile,
           "'" + tj + "' is not valid JSON (" + e.what() + "); re-download the tokenizer");
    }
    auto u = std::make_shared<HfUnigram>(HfUnigram::from_json(j, tj));
    for (const auto& a : u->added_tokens()) t.add_special(a.content, a.id, a.lstrip, a.rstrip);
    t.vocab_size_ = u->vocab_size();
    t.unigram_ = u;
    t.source_ = "tokenizer.json";
  } else {
    fail(ErrorCode::kFileNotFound, "'" + dir +
                                       "' holds neither spiece.model nor tokenizer.json; point to the T5 "
                                       "tokenizer folder (tokenizer_2 for FLUX, tokenizer_3 for SD3)");
  }
  // longest first, so "<extra_id_10>" wins over a shorter token sharing its start
  std::stable_sort(t.specials_.begin(), t.specials_.end(),
                   [](const Special& a, const Special& b) { return a.text.size() > b.text.size(); });
  auto pick = [&](const char* key, const std::string& fallback) {
    std::string s = token_string(cfg, key);
    if (s.empty()) s = token_string(map, key);
    if (s.empty()) s = fallback;
    const int32_t id = t.id_of(s);
    if (id < 0)
      fail(ErrorCode::kCorruptFile, "the T5 tokenizer in '" + dir + "' has no token '" + s + "' (" + key +
                                        "); re-download the tokenizer folder");
    return id;
  };
  t.pad_ = pick("pad_token", "<pad>");
  t.eos_ = pick("eos_token", "</s>");
  return t;
}

void T5Tokenizer::encode_plain(const std::string& text, bool at_origin, std::vector<int32_t>* out) const {
  if (text.empty()) return;
  if (unigram_) {
    unigram_->encode_segment(text, at_origin, out);
    return;
  }
  std::vector<int> ids;
  const auto st = sp_->Encode(text, &ids);
  if (!st.ok()) fail(ErrorCode::kInternal, "sentencepiece could not encode the prompt: " + st.ToString());
  out->insert(out->end(), ids.begin(), ids.end());
}

std::vector<int32_t> T5Tokenizer::encode(const std::string& raw) const {
  const std::string text = utf8_sanitize(raw);
  std::vector<int32_t> out;
  size_t seg_begin = 0, i = 0;
  auto is_space_at = [&](size_t p) { return is_unicode_whitespace(utf8_decode(text, p)); };
  while (i < text.size()) {
    const Special* hit = nullptr;
    for (const auto& s : specials_)
      if (text.compare(i, s.text.size(), s.text) == 0) {
        hit = &s;
        break;
      }
    if (!hit) {
      i += utf8_char_len(text, i);
      continue;
    }
    size_t seg_end = i;
    if (hit->lstrip)  // the token takes the whitespace before it
      while (seg_end > seg_begin) {
        size_t p = seg_end - 1;
        while (p > seg_begin && (static_cast<uint8_t>(text[p]) & 0xC0) == 0x80) --p;
        if (!is_space_at(p)) break;
        seg_end = p;
      }
    encode_plain(text.substr(seg_begin, seg_end - seg_begin), seg_begin == 0, &out);
    out.push_back(hit->id);
    i += hit->text.size();
    if (hit->rstrip)
      while (i < text.size() && is_space_at(i)) i += utf8_char_len(text, i);
    seg_begin = i;
  }
  encode_plain(text.substr(seg_begin), seg_begin == 0, &out);
  return out;
}

std::vector<int32_t> T5Tokenizer::encode_padded(const std::string& text, int max_len) const {
  if (max_len < 1)
    fail(ErrorCode::kInvalidArgument,
         "max_sequence_length " + std::to_string(max_len) + " must be at least 1");
  std::vector<int32_t> ids = encode(text);
  if (static_cast<int>(ids.size()) > max_len - 1) ids.resize(max_len - 1);
  ids.push_back(eos_);
  ids.resize(max_len, pad_);
  return ids;
}

}  // namespace vg
