#include "text/prompt_syntax.h"

#include <unicode/uchar.h>
#include <unicode/utf8.h>

#include <charconv>

#include "core/error.h"
#include "text/clip_tokenizer.h"

namespace vg {

namespace {

constexpr int kChunkLength = 75;  // prompt tokens per 77-token window

struct Piece {
  std::string text;
  double weight;  // Python floats: equal-weight merging compares doubles
};

UChar32 cp_at(const std::string& s, size_t i, size_t* next) {
  int32_t pos = static_cast<int32_t>(i);
  UChar32 c;
  U8_NEXT(s.data(), pos, static_cast<int32_t>(s.size()), c);
  *next = static_cast<size_t>(pos);
  return c;
}

UChar32 cp_before(const std::string& s, size_t i, size_t* prev) {
  int32_t pos = static_cast<int32_t>(i);
  UChar32 c;
  U8_PREV(s.data(), 0, pos, c);
  *prev = static_cast<size_t>(pos);
  return c;
}

bool is_syntax(char c) { return c == '\\' || c == '(' || c == ')' || c == '[' || c == ']' || c == ':'; }

// Python's str regex classes \s and \w.
bool py_space(UChar32 c) { return (c >= 0x1C && c <= 0x1F) || u_isUWhiteSpace(c); }
bool py_word(UChar32 c) {
  if (c < 0) return false;
  const int8_t t = u_charType(c);
  return c == '_' || u_isalnum(c) || t == U_LETTER_NUMBER || t == U_OTHER_NUMBER;
}

// re.split(r"\s*\bBREAK\b\s*", text): parts with weight 1, ("BREAK", -1) between.
void split_break(const std::string& s, std::vector<Piece>* res) {
  size_t cur = 0, search = 0, tmp = 0;
  for (size_t p; (p = s.find("BREAK", search)) != std::string::npos;) {
    size_t e = p + 5;
    const bool left = p == 0 || !py_word(cp_before(s, p, &tmp));
    const bool right = e == s.size() || !py_word(cp_at(s, e, &tmp));
    if (!left || !right) {
      search = p + 1;
      continue;
    }
    size_t b = p;
    while (b > cur && py_space(cp_before(s, b, &tmp))) b = tmp;
    while (e < s.size() && py_space(cp_at(s, e, &tmp))) e = tmp;
    res->push_back({s.substr(cur, b - cur), 1.0});
    res->push_back({"BREAK", -1.0});
    cur = search = e;
  }
  res->push_back({s.substr(cur), 1.0});
}

// Matches ":\s*([+-]?[.\d]+)\s*\)" at s[i] == ':'; *end is past the ')'.
bool match_weight(const std::string& s, size_t i, size_t* end, std::string* number) {
  size_t j = i + 1, tmp = 0;
  while (j < s.size() && py_space(cp_at(s, j, &tmp))) j = tmp;
  const size_t num_begin = j;
  if (j < s.size() && (s[j] == '+' || s[j] == '-')) ++j;
  const size_t digits = j;
  while (j < s.size() && (s[j] == '.' || (s[j] >= '0' && s[j] <= '9'))) ++j;
  if (j == digits) return false;
  *number = s.substr(num_begin, j - num_begin);
  while (j < s.size() && py_space(cp_at(s, j, &tmp))) j = tmp;
  if (j >= s.size() || s[j] != ')') return false;
  *end = j + 1;
  return true;
}

// Python float() of "[+-]?[.0-9]+"; false for e.g. "1.2.3" or ".".
bool parse_weight(const std::string& num, double* out) {
  size_t b = (num[0] == '+' || num[0] == '-') ? 1 : 0;
  double v = 0;
  auto [ptr, ec] = std::from_chars(num.data() + b, num.data() + num.size(), v, std::chars_format::fixed);
  if (ec != std::errc() || ptr != num.data() + num.size()) return false;
  *out = num[0] == '-' ? -v : v;
  return true;
}

}  // namespace

std::vector<std::pair<std::string, float>> parse_prompt_attention(const std::string& s) {
  std::vector<Piece> res;
  std::vector<size_t> round, square;
  auto multiply_range = [&](size_t start, double m) {
    for (size_t p = start; p < res.size(); ++p) res[p].weight *= m;
  };
  const double kRound = 1.1, kSquare = 1 / 1.1;
  for (size_t i = 0; i < s.size();) {
    const char c = s[i];
    if (c == '\\') {  // "\(" etc. are literals; a lone backslash vanishes (A1111 appends text[1:])
      const bool esc = i + 1 < s.size() && is_syntax(s[i + 1]) && s[i + 1] != ':';
      res.push_back({esc ? std::string(1, s[i + 1]) : std::string(), 1.0});
      i += esc ? 2 : 1;
    } else if (c == '(') {
      round.push_back(res.size());
      ++i;
    } else if (c == '[') {
      square.push_back(res.size());
      ++i;
    } else if (c == ':') {
      size_t end = 0;
      std::string num;
      double w = 0;
      if (!match_weight(s, i, &end, &num)) {
        split_break(":", &res);
        ++i;
      } else if (!round.empty() && parse_weight(num, &w)) {
        multiply_range(round.back(), w);
        round.pop_back();
        i = end;
      } else {
        split_break(s.substr(i, end - i), &res);
        i = end;
      }
    } else if (c == ')' || c == ']') {
      auto& open = c == ')' ? round : square;
      if (open.empty()) {
        split_break(std::string(1, c), &res);
      } else {
        multiply_range(open.back(), c == ')' ? kRound : kSquare);
        open.pop_back();
      }
      ++i;
    } else {
      size_t j = i;
      while (j < s.size() && !is_syntax(s[j])) ++j;
      split_break(s.substr(i, j - i), &res);
      i = j;
    }
  }
  for (size_t p : round) multiply_range(p, kRound);
  for (size_t p : square) multiply_range(p, kSquare);
  if (res.empty()) res.push_back({"", 1.0});
  for (size_t i = 0; i + 1 < res.size();) {
    if (res[i].weight == res[i + 1].weight) {
      res[i].text += res[i + 1].text;
      res.erase(res.begin() + static_cast<std::ptrdiff_t>(i) + 1);
    } else {
      ++i;
    }
  }
  std::vector<std::pair<std::string, float>> out;
  for (auto& p : res) out.emplace_back(p.text, static_cast<float>(p.weight));
  return out;
}

std::vector<PromptChunk> a1111_chunks(const ClipTokenizer& tok, const std::string& prompt,
                                      int comma_backtrack) {
  const int32_t comma = tok.token_id(",</w>");
  std::vector<PromptChunk> chunks;
  PromptChunk chunk;
  int last_comma = -1;
  auto next_chunk = [&] {
    chunk.ids.resize(kChunkLength, tok.eos_id());
    chunk.weights.resize(kChunkLength, 1.0f);
    chunk.ids.insert(chunk.ids.begin(), tok.bos_id());
    chunk.weights.insert(chunk.weights.begin(), 1.0f);
    chunk.ids.push_back(tok.eos_id());
    chunk.weights.push_back(1.0f);
    // process_tokens: after the first EOS everything is the pad id (SD2/SDXL-G pad with "!").
    bool seen_eos = false;
    for (auto& id : chunk.ids) {
      if (seen_eos) id = tok.pad_id();
      seen_eos = seen_eos || id == tok.eos_id();
    }
    last_comma = -1;
    chunks.push_back(std::move(chunk));
    chunk = PromptChunk();
  };
  for (const auto& [text, weight] : parse_prompt_attention(prompt)) {
    if (text == "BREAK" && weight == -1.0f) {
      next_chunk();
      continue;
    }
    // OpenCLIP's tokenizer (A1111's SD2 / SDXL-G) knows no "!" pad token in text.
    for (int32_t id : tok.encode(text, /*split_on_pad=*/false)) {
      const int len = static_cast<int>(chunk.ids.size());
      if (id == comma) {
        last_comma = len;
      } else if (comma_backtrack != 0 && len == kChunkLength && last_comma != -1 &&
                 len - last_comma <= comma_backtrack) {
        // Move what follows the last comma into the next chunk.
        const auto at = static_cast<std::ptrdiff_t>(last_comma + 1);
        std::vector<int32_t> ids(chunk.ids.begin() + at, chunk.ids.end());
        std::vector<float> weights(chunk.weights.begin() + at, chunk.weights.end());
        chunk.ids.resize(at);
        chunk.weights.resize(at);
        next_chunk();
        chunk.ids = std::move(ids);
        chunk.weights = std::move(weights);
      }
      if (static_cast<int>(chunk.ids.size()) == kChunkLength) next_chunk();
      chunk.ids.push_back(id);
      chunk.weights.push_back(weight);
    }
  }
  if (!chunk.ids.empty() || chunks.empty()) next_chunk();
  return chunks;
}

void apply_emphasis(Tensor& z, const std::vector<float>& weights) {
  if (z.rank() < 2 || z.dim(-2) != static_cast<int64_t>(weights.size()))
    fail(ErrorCode::kInvalidArgument, "apply_emphasis: " + std::to_string(weights.size()) +
                                          " weights for hidden states of shape " + shape_str(z.shape()));
  const int64_t c = z.dim(-1), t = z.dim(-2), n = z.numel();
  float* d = z.data();
  double before = 0, after = 0;
  for (int64_t i = 0; i < n; ++i) before += d[i];
  for (int64_t i = 0; i < n; ++i) {
    d[i] *= weights[static_cast<size_t>((i / c) % t)];
    after += d[i];
  }
  // A zero mean after weighting would make A1111 divide by zero; leave z as weighted.
  if (after == 0) return;
  const float scale = static_cast<float>(before / after);
  for (int64_t i = 0; i < n; ++i) d[i] *= scale;
}

}  // namespace vg
