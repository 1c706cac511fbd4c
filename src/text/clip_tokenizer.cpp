#include "text/clip_tokenizer.h"

#include <unicode/locid.h>
#include <unicode/normalizer2.h>
#include <unicode/uchar.h>
#include <unicode/unistr.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "io/atomic_file.h"
#include "text/clip_merges.h"

namespace vg {

namespace {

std::string cp_to_utf8(UChar32 cp) {
  std::string s;
  icu::UnicodeString(cp).toUTF8String(s);
  return s;
}

bool is_control(UChar32 c) {
  if (c == '\t' || c == '\n' || c == '\r') return false;
  int8_t t = u_charType(c);
  return t == U_CONTROL_CHAR || t == U_FORMAT_CHAR || t == U_UNASSIGNED ||
         t == U_PRIVATE_USE_CHAR || t == U_SURROGATE;
}

bool is_bert_whitespace(UChar32 c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || u_charType(c) == U_SPACE_SEPARATOR;
}

bool is_cjk(UChar32 c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
         (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
         (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

bool is_letter(UChar32 c) {
  int8_t t = u_charType(c);
  return t == U_UPPERCASE_LETTER || t == U_LOWERCASE_LETTER || t == U_TITLECASE_LETTER ||
         t == U_MODIFIER_LETTER || t == U_OTHER_LETTER;
}

bool is_number(UChar32 c) {
  int8_t t = u_charType(c);
  return t == U_DECIMAL_DIGIT_NUMBER || t == U_LETTER_NUMBER || t == U_OTHER_NUMBER;
}

bool is_space(UChar32 c) { return u_isUWhiteSpace(c) || is_bert_whitespace(c); }

std::vector<UChar32> to_cps(const icu::UnicodeString& s) {
  std::vector<UChar32> out;
  for (int32_t i = 0; i < s.length();) {
    UChar32 c = s.char32At(i);
    out.push_back(c);
    i += U16_LENGTH(c);
  }
  return out;
}

// BasicTokenizer(strip_accents=False, do_split_on_punc=False) then lower();
// `bert_clean` false: only NFC and lowercasing (the fast tokenizer's normalizer).
std::vector<UChar32> clean_text(const std::string& text, bool bert_clean) {
  icu::UnicodeString u = icu::UnicodeString::fromUTF8(text);
  icu::UnicodeString cleaned;
  for (UChar32 c : to_cps(u)) {
    if (bert_clean && (c == 0 || c == 0xFFFD || is_control(c))) continue;
    if (is_bert_whitespace(c)) {
      cleaned.append(UChar32(' '));
    } else if (bert_clean && is_cjk(c)) {
      cleaned.append(UChar32(' ')).append(c).append(UChar32(' '));
    } else {
      cleaned.append(c);
    }
  }
  UErrorCode st = U_ZERO_ERROR;
  const icu::Normalizer2* nfc = icu::Normalizer2::getNFCInstance(st);
  icu::UnicodeString norm = U_SUCCESS(st) ? nfc->normalize(cleaned, st) : cleaned;
  if (U_FAILURE(st)) norm = cleaned;
  norm.toLower(icu::Locale::getRoot());
  return to_cps(norm);
}

}  // namespace

// CLIP's vocabulary holds 49408 ids: 256 bytes, 256 "byte</w>", 48894 merges, 2 specials.
constexpr int kClipMergeCount = 49152 - 256 - 2;

std::vector<std::string> ClipTokenizer::read_merges(const std::string& text, const std::string& source) {
  std::istringstream merges(text);
  std::string line;
  std::vector<std::string> pairs;
  bool first = true;
  while (static_cast<int>(pairs.size()) < kClipMergeCount && std::getline(merges, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    // transformers skips the first line (the '#version' header) and blank lines.
    if ((first && line.rfind("#version", 0) == 0) || line.empty()) {
      first = false;
      continue;
    }
    first = false;
    if (!ranks_.add_line(line)) fail(ErrorCode::kCorruptFile, "'" + source + "' has a malformed line: " + line);
    pairs.push_back(line);
  }
  return pairs;
}

std::string ClipTokenizer::read_special_tokens(const std::string& dir) {
  // Special tokens come from the tokenizer config when present (SD2 pads with "!").
  auto read_tok = [](const nlohmann::json& j, const char* key, std::string* out) {
    if (!j.contains(key)) return;
    const auto& v = j[key];
    if (v.is_string()) *out = v.get<std::string>();
    else if (v.is_object() && v.contains("content")) *out = v["content"].get<std::string>();
  };
  std::string pad_str = eos_str_;
  for (const char* f : {"/special_tokens_map.json", "/tokenizer_config.json"}) {
    if (!path_exists(dir + f)) continue;
    try {
      auto j = nlohmann::json::parse(read_file(dir + f));
      read_tok(j, "bos_token", &bos_str_);
      read_tok(j, "eos_token", &eos_str_);
      read_tok(j, "pad_token", &pad_str);
      if (j.contains("model_max_length") && j["model_max_length"].is_number_integer()) {
        auto m = j["model_max_length"].get<int64_t>();
        if (m >= 2 && m <= 1024) max_length_ = static_cast<int>(m);
      }
    } catch (const nlohmann::json::exception& e) {
      fail(ErrorCode::kCorruptFile, "'" + dir + f + "' is not valid JSON: " + e.what());
    }
  }
  return pad_str;
}

void ClipTokenizer::resolve_special_ids(const std::string& pad_str, const std::string& source) {
  auto id_of = [&](const std::string& s) {
    auto it = vocab_.find(s);
    if (it == vocab_.end()) fail(ErrorCode::kCorruptFile, "special token '" + s + "' is not in " + source);
    return it->second;
  };
  bos_ = id_of(bos_str_);
  eos_ = id_of(eos_str_);
  pad_ = id_of(pad_str);
  pad_str_ = pad_str;
}

ClipTokenizer ClipTokenizer::load(const std::string& dir) {
  ClipTokenizer t;
  nlohmann::json vocab;
  try {
    vocab = nlohmann::json::parse(read_file(dir + "/vocab.json"));
  } catch (const nlohmann::json::exception& e) {
    fail(ErrorCode::kCorruptFile, "'" + dir + "/vocab.json' is not valid JSON: " + e.what());
  }
  if (!vocab.is_object() || vocab.empty())
    fail(ErrorCode::kCorruptFile, "'" + dir + "/vocab.json' is not a token->id object");
  for (auto& [k, v] : vocab.items()) t.vocab_[k] = v.get<int32_t>();
  t.read_merges(read_file(dir + "/merges.txt"), dir + "/merges.txt");
  t.resolve_special_ids(t.read_special_tokens(dir), "'" + dir + "/vocab.json'");
  return t;
}

ClipTokenizer ClipTokenizer::builtin(const std::string& pad_token) {
  ClipTokenizer t;
  // simple_tokenizer's order: the byte chars in bytes_to_unicode order (printable
  // bytes first, then the remapped ones: i.e. by code point), then each + "</w>",
  // then every merge's concatenation, then the two special tokens.
  // (the stand-ins of the printable bytes are the bytes themselves; the rest follow from 256 up)
  std::vector<std::string> bytes;
  const auto& b2u = gpt2_byte_to_unicode();
  for (bool printable : {true, false})
    for (int b = 0; b < 256; ++b)
      if ((b2u[b] == cp_to_utf8(b)) == printable) bytes.push_back(b2u[b]);
  int32_t id = 0;
  for (auto& b : bytes) t.vocab_.emplace(b, id++);
  for (auto& b : bytes) t.vocab_.emplace(b + "</w>", id++);
  const std::string text(reinterpret_cast<const char*>(kClipMerges), kClipMerges_size);
  for (auto& pair : t.read_merges(text, "the built-in CLIP merges")) {
    std::string joined = pair;
    joined.erase(joined.find(' '), 1);
    t.vocab_.emplace(joined, id++);
  }
  t.vocab_.emplace(t.bos_str_, id++);
  t.vocab_.emplace(t.eos_str_, id++);
  t.resolve_special_ids(pad_token, "the built-in CLIP vocabulary");
  return t;
}

ClipTokenizer ClipTokenizer::builtin_with_config(const std::string& config_dir) {
  ClipTokenizer t = builtin();
  t.resolve_special_ids(t.read_special_tokens(config_dir), "the built-in CLIP vocabulary");
  return t;
}

int32_t ClipTokenizer::token_id(const std::string& token) const {
  auto it = vocab_.find(token);
  return it == vocab_.end() ? -1 : it->second;
}

void ClipTokenizer::set_pad_token(const std::string& token) {
  auto it = vocab_.find(token);
  if (it == vocab_.end()) fail(ErrorCode::kCorruptFile, "pad token '" + token + "' is not in the vocabulary");
  pad_ = it->second;
  pad_str_ = token;
}

std::vector<std::string> ClipTokenizer::bpe(const std::string& word_utf8) const {
  auto it = cache_.find(word_utf8);
  if (it != cache_.end()) return it->second;
  // Split into code points (each already a byte-level unicode char).
  std::vector<std::string> word = utf8_chars(word_utf8);
  if (word.empty()) return {};
  word.back() += "</w>";
  word = ranks_.merge(std::move(word));
  cache_.emplace(word_utf8, word);
  return word;
}

void ClipTokenizer::tokenize_chunk(const std::string& text, std::vector<std::string>* out) const {
  std::vector<UChar32> cps = clean_text(text, flavor_ == Flavor::kSlow);
  auto emit = [&](size_t b, size_t e) {
    std::string bytes;
    for (size_t i = b; i < e; ++i) bytes += cp_to_utf8(cps[i]);
    for (auto& tok : bpe(byte_level_map(bytes))) out->push_back(tok);
  };
  static const char* kContractions[] = {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};
  size_t i = 0;
  while (i < cps.size()) {
    UChar32 c = cps[i];
    if (is_space(c)) {
      ++i;
      continue;
    }
    if (c == '\'') {
      bool matched = false;
      for (const char* con : kContractions) {
        size_t len = std::char_traits<char>::length(con);
        if (i + len > cps.size()) continue;
        bool ok = true;
        for (size_t k = 1; k < len; ++k) ok = ok && u_tolower(cps[i + k]) == con[k];
        if (ok) {
          emit(i, i + len);
          i += len;
          matched = true;
          break;
        }
      }
      if (matched) continue;
    }
    size_t j = i + 1;
    if (is_letter(c)) {
      while (j < cps.size() && is_letter(cps[j])) ++j;
    } else if (is_number(c)) {
      // single digit
    } else {
      while (j < cps.size() && !is_space(cps[j]) && !is_letter(cps[j]) && !is_number(cps[j])) ++j;
    }
    emit(i, j);
    i = j;
  }
}

std::vector<std::string> ClipTokenizer::tokenize(const std::string& text, bool split_on_pad) const {
  // Special tokens are cut out before normalisation (the earliest, then the longest, wins).
  std::vector<const std::string*> specials = {&bos_str_, &eos_str_};
  if (split_on_pad && !pad_str_.empty()) specials.push_back(&pad_str_);
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t next = std::string::npos;
    const std::string* hit = nullptr;
    for (const std::string* sp : specials) {
      const size_t at = text.find(*sp, pos);
      if (at < next || (at == next && at != std::string::npos && sp->size() > hit->size())) {
        next = at;
        hit = sp;
      }
    }
    tokenize_chunk(text.substr(pos, next == std::string::npos ? std::string::npos : next - pos), &out);
    if (next == std::string::npos) break;
    out.push_back(*hit);
    pos = next + hit->size();
  }
  return out;
}

std::vector<int32_t> ClipTokenizer::encode(const std::string& text, bool split_on_pad) const {
  std::vector<int32_t> ids;
  for (auto& tok : tokenize(text, split_on_pad)) {
    auto it = vocab_.find(tok);
    ids.push_back(it == vocab_.end() ? eos_ : it->second);  // unk = <|endoftext|>
  }
  return ids;
}

std::vector<int32_t> ClipTokenizer::encode_padded(const std::string& text) const {
  std::vector<int32_t> ids = encode(text);
  std::vector<int32_t> out{bos_};
  for (size_t i = 0; i < ids.size() && out.size() < static_cast<size_t>(max_length_ - 1); ++i)
    out.push_back(ids[i]);
  out.push_back(eos_);
  while (out.size() < static_cast<size_t>(max_length_)) out.push_back(pad_);
  return out;
}

}  // namespace vg
