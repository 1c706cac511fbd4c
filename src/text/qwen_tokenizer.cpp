#include "text/qwen_tokenizer.h"

#include <unicode/normalizer2.h>
#include <unicode/regex.h>
#include <unicode/unistr.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "io/atomic_file.h"

namespace vg {

namespace {

// The Qwen2 pre-tokenizer split regex. \s / \S written as White_Space, which is
// what the tokenizers library's Oniguruma means by them on Unicode text.
constexpr const char* kSplitRegex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)"
    "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+"
    "|\\p{N}"
    "| ?[^\\p{White_Space}\\p{L}\\p{N}]+[\\r\\n]*"
    "|\\p{White_Space}*[\\r\\n]+"
    "|\\p{White_Space}+(?!\\P{White_Space})"
    "|\\p{White_Space}+";

const icu::RegexPattern& split_pattern() {
  static const std::unique_ptr<icu::RegexPattern> p = [] {
    UErrorCode st = U_ZERO_ERROR;
    UParseError pe;
    std::unique_ptr<icu::RegexPattern> r(
        icu::RegexPattern::compile(icu::UnicodeString::fromUTF8(kSplitRegex), 0, pe, st));
    if (U_FAILURE(st))
      fail(ErrorCode::kInternal, std::string("the Qwen split regex does not compile: ") + u_errorName(st));
    return r;
  }();
  return *p;
}

nlohmann::json parse_json(const std::string& path) {
  if (!path_exists(path)) fail(ErrorCode::kMissingComponent, "tokenizer file '" + path + "' is missing");
  try {
    return nlohmann::json::parse(read_file(path));
  } catch (const nlohmann::json::exception& e) {
    fail(ErrorCode::kCorruptFile,
         "'" + path + "' is not valid JSON: " + e.what() + "; re-download the tokenizer");
  }
}

// A token name in tokenizer_config.json: a string or {"content": ...}; "" when absent/null.
std::string token_name(const nlohmann::json& j, const char* key) {
  if (!j.contains(key)) return "";
  const auto& v = j[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string())
    return v["content"].get<std::string>();
  return "";
}

// Qwen2's special tokens in their real order, right after the BPE vocabulary
// (the same in Qwen2, Qwen2.5(-VL) and Qwen3); used when a folder lists none.
constexpr const char* kQwen2Specials[] = {
    "<|endoftext|>",  "<|im_start|>",   "<|im_end|>",     "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>",  "<|box_end|>",    "<|quad_start|>", "<|quad_end|>",         "<|vision_start|>",
    "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>",  "<|video_pad|>"};

}  // namespace

QwenPromptTemplate QwenPromptTemplate::zimage() {
  return {"<|im_start|>user\n", "<|im_end|>\n<|im_start|>assistant\n", 0};
}

QwenPromptTemplate QwenPromptTemplate::qwen_image() {
  return {
      "<|im_start|>system\nDescribe the image by detailing the color, shape, size, texture, quantity, text, "
      "spatial relationships of the objects and background:<|im_end|>\n<|im_start|>user\n",
      "<|im_end|>\n<|im_start|>assistant\n", 34};
}

void QwenTokenizer::add_token(const std::string& content, int32_t id) {
  if (content.empty()) return;
  added_[content] = id;
  vocab_size_ = std::max(vocab_size_, id + 1);
}

void QwenTokenizer::finish(const std::string& eos, const std::string& pad, const std::string& source) {
  for (const auto& [k, v] : vocab_) vocab_size_ = std::max(vocab_size_, v + 1);
  added_by_length_.clear();
  for (const auto& [k, v] : added_) added_by_length_.push_back(k);
  std::sort(added_by_length_.begin(), added_by_length_.end(), [](const std::string& a, const std::string& b) {
    return a.size() != b.size() ? a.size() > b.size() : a < b;
  });
  auto id_of = [&](const std::string& name, const char* what) {
    const int32_t id = token_id(name);
    if (id < 0)
      fail(ErrorCode::kCorruptFile, std::string("the ") + what + " token '" + name + "' is not in " + source +
                                        "; the tokenizer files are incomplete or not a Qwen tokenizer's");
    return id;
  };
  eos_ = id_of(eos.empty() ? "<|im_end|>" : eos, "eos");
  pad_ = id_of(pad.empty() ? "<|endoftext|>" : pad, "pad");
}

QwenTokenizer QwenTokenizer::from_dir(const std::string& dir) {
  if (path_exists(dir + "/tokenizer.json")) return from_tokenizer_json(dir + "/tokenizer.json");
  if (!path_exists(dir + "/vocab.json") || !path_exists(dir + "/merges.txt"))
    fail(ErrorCode::kMissingComponent, "'" + dir +
                                           "' has neither tokenizer.json nor vocab.json + merges.txt; "
                                           "download the model's tokenizer folder");
  return from_vocab_merges(dir + "/vocab.json", dir + "/merges.txt",
                           path_exists(dir + "/tokenizer_config.json") ? dir + "/tokenizer_config.json" : "");
}

QwenTokenizer QwenTokenizer::from_tokenizer_json(const std::string& path) {
  const auto j = parse_json(path);
  QwenTokenizer t;
  try {
    const auto& model = j.at("model");
    if (model.value("type", std::string("BPE")) != "BPE")
      fail(ErrorCode::kUnsupportedModel,
           "'" + path + "' is not a BPE tokenizer; a Qwen tokenizer.json is needed");
    for (const auto& [k, v] : model.at("vocab").items()) t.vocab_[k] = v.get<int32_t>();
    for (const auto& m : model.at("merges")) {
      // tokenizers >= 0.20 writes [left, right]; older files "left right"
      if (m.is_array() && m.size() == 2) {
        t.ranks_.add(m[0].get<std::string>(), m[1].get<std::string>());
      } else if (!m.is_string() || !t.ranks_.add_line(m.get<std::string>())) {
        fail(ErrorCode::kCorruptFile, "'" + path + "' has a malformed merge: " + m.dump());
      }
    }
    if (j.contains("added_tokens") && j["added_tokens"].is_array())
      for (const auto& a : j["added_tokens"])
        t.add_token(a.at("content").get<std::string>(), a.at("id").get<int32_t>());
  } catch (const nlohmann::json::exception& e) {
    fail(ErrorCode::kCorruptFile, "'" + path + "' is not a tokenizers BPE file: " + e.what());
  }
  // eos/pad names live in tokenizer_config.json beside it (Qwen's defaults without one)
  std::string eos, pad;
  const std::string cfg_path = path.substr(0, path.find_last_of('/') + 1) + "tokenizer_config.json";
  if (path_exists(cfg_path)) {
    const auto cfg = parse_json(cfg_path);
    eos = token_name(cfg, "eos_token");
    pad = token_name(cfg, "pad_token");
  }
  t.finish(eos, pad, "'" + path + "'");
  return t;
}

QwenTokenizer QwenTokenizer::from_vocab_merges(const std::string& vocab_json, const std::string& merges_txt,
                                               const std::string& config_json) {
  QwenTokenizer t;
  const auto vocab = parse_json(vocab_json);
  if (!vocab.is_object() || vocab.empty())
    fail(ErrorCode::kCorruptFile,
         "'" + vocab_json + "' is not a token->id object; re-download the tokenizer");
  for (const auto& [k, v] : vocab.items()) {
    if (!v.is_number_integer())
      fail(ErrorCode::kCorruptFile, "'" + vocab_json + "' maps '" + k + "' to a non-integer");
    t.vocab_[k] = v.get<int32_t>();
  }
  std::istringstream merges(read_file(merges_txt));
  std::string line;
  for (bool first = true; std::getline(merges, line); first = false) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if ((first && line.rfind("#version", 0) == 0) || line.empty()) continue;
    if (!t.ranks_.add_line(line))
      fail(ErrorCode::kCorruptFile, "'" + merges_txt + "' has a malformed line: " + line);
  }
  std::string eos, pad;
  bool listed = false;
  if (!config_json.empty()) {
    const auto cfg = parse_json(config_json);
    eos = token_name(cfg, "eos_token");
    pad = token_name(cfg, "pad_token");
    if (cfg.contains("added_tokens_decoder") && cfg["added_tokens_decoder"].is_object()) {
      for (const auto& [id, a] : cfg["added_tokens_decoder"].items()) {
        char* end = nullptr;
        const long v = std::strtol(id.c_str(), &end, 10);
        if (id.empty() || *end != '\0' || v < 0 || v > INT32_MAX || !a.is_object())
          fail(ErrorCode::kCorruptFile, "'" + config_json + "' has a malformed added_tokens_decoder entry '" +
                                            id + "'; re-download the tokenizer");
        t.add_token(a.value("content", std::string()), static_cast<int32_t>(v));
        listed = true;
      }
    }
    // older folders list them in added_tokens.json beside it
    const std::string added = config_json.substr(0, config_json.find_last_of('/') + 1) + "added_tokens.json";
    if (path_exists(added)) {
      const auto list = parse_json(added);  // kept alive: items() does not own it
      if (!list.is_object()) fail(ErrorCode::kCorruptFile, "'" + added + "' is not a token->id object");
      for (const auto& [k, v] : list.items()) {
        if (!v.is_number_integer())
          fail(ErrorCode::kCorruptFile, "'" + added + "' maps '" + k + "' to a non-integer");
        t.add_token(k, v.get<int32_t>());
      }
      listed = true;
    }
  }
  if (!listed) {
    int32_t next = 0;
    for (const auto& [k, v] : t.vocab_) next = std::max(next, v + 1);
    for (const char* s : kQwen2Specials) t.add_token(s, next++);
  }
  t.finish(eos, pad, "'" + vocab_json + "'");
  return t;
}

int32_t QwenTokenizer::token_id(const std::string& token) const {
  auto a = added_.find(token);
  if (a != added_.end()) return a->second;
  auto v = vocab_.find(token);
  return v == vocab_.end() ? -1 : v->second;
}

std::vector<std::string> QwenTokenizer::bpe(const std::string& mapped) const {
  return ranks_.merge(utf8_chars(mapped));
}

void QwenTokenizer::tokenize_chunk(const std::string& text, std::vector<std::string>* out) const {
  if (text.empty()) return;
  UErrorCode st = U_ZERO_ERROR;
  const icu::Normalizer2* nfc = icu::Normalizer2::getNFCInstance(st);
  icu::UnicodeString u = icu::UnicodeString::fromUTF8(text);
  if (U_SUCCESS(st)) u = nfc->normalize(u, st);
  if (U_FAILURE(st)) fail(ErrorCode::kInternal, std::string("NFC normalisation failed: ") + u_errorName(st));
  std::unique_ptr<icu::RegexMatcher> m(split_pattern().matcher(u, st));
  if (U_FAILURE(st))
    fail(ErrorCode::kInternal, std::string("the Qwen split regex failed: ") + u_errorName(st));
  auto emit = [&](int32_t b, int32_t e) {
    if (e <= b) return;
    std::string piece;
    u.tempSubStringBetween(b, e).toUTF8String(piece);
    for (auto& tok : bpe(byte_level_map(piece))) out->push_back(std::move(tok));
  };
  int32_t pos = 0;
  while (m->find(st) && U_SUCCESS(st)) {
    const int32_t b = m->start(st), e = m->end(st);
    emit(pos, b);  // "Isolated": text between matches is a piece too (the regex leaves none)
    emit(b, e);
    pos = e;
  }
  emit(pos, u.length());
}

std::vector<std::string> QwenTokenizer::tokenize(const std::string& text) const {
  // Added tokens are cut out of the raw text first: the leftmost match, the longest at a tie.
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t next = std::string::npos;
    const std::string* hit = nullptr;
    for (const std::string& a : added_by_length_) {
      const size_t at = text.find(a, pos);
      if (at < next) {  // longest first, so an equal position keeps the longer one
        next = at;
        hit = &a;
      }
    }
    tokenize_chunk(text.substr(pos, next == std::string::npos ? std::string::npos : next - pos), &out);
    if (!hit) break;
    out.push_back(*hit);
    pos = next + hit->size();
  }
  return out;
}

std::vector<int32_t> QwenTokenizer::encode(const std::string& text) const {
  std::vector<int32_t> ids;
  for (const auto& tok : tokenize(text)) {
    const int32_t id = token_id(tok);
    if (id >= 0)
      ids.push_back(id);  // no unk token: BPE pieces outside the vocabulary are dropped, as tokenizers does
  }
  return ids;
}

std::vector<int32_t> QwenTokenizer::encode_chat(const std::string& prompt, int max_len,
                                                const QwenPromptTemplate& tmpl) const {
  if (max_len < 1)
    fail(ErrorCode::kInvalidArgument, "max_len must be at least 1, got " + std::to_string(max_len));
  std::vector<int32_t> ids = encode(tmpl.apply(prompt));
  if (static_cast<int>(ids.size()) > max_len) ids.resize(static_cast<size_t>(max_len));
  return ids;
}

std::vector<int32_t> QwenTokenizer::encode_chat_padded(const std::string& prompt, int max_len,
                                                       std::vector<int32_t>* mask,
                                                       const QwenPromptTemplate& tmpl) const {
  std::vector<int32_t> ids = encode_chat(prompt, max_len, tmpl);
  if (mask) mask->assign(ids.size(), 1);
  ids.resize(static_cast<size_t>(max_len), pad_);
  if (mask) mask->resize(static_cast<size_t>(max_len), 0);
  return ids;
}

}  // namespace vg
