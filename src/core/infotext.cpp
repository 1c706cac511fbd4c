#include "core/infotext.h"

#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>
#include <string_view>
#include <utility>
#include <vector>

namespace vg {

namespace {

// Python's str.isspace for ASCII (A1111 strips with str.strip and matches \s).
bool is_space(char c) { return c == ' ' || (c >= '\t' && c <= '\r') || (c >= '\x1c' && c <= '\x1f'); }
// \w; bytes of UTF-8 sequences count as word characters (Python's \w takes letters of any script).
bool is_word(char c) {
  const auto u = static_cast<unsigned char>(c);
  return std::isalnum(u) || c == '_' || u >= 0x80;
}
bool is_key(char c) { return is_word(c) || c == ' ' || c == '-' || c == '/'; }

std::string_view strip(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

using Pairs = std::vector<std::pair<std::string_view, std::string_view>>;

// re.findall(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)', line). A key
// ends where its run of key characters does, so a start inside a run that is
// not followed by ':' fails too: the scan skips the run (linear time).
Pairs find_pairs(std::string_view s) {
  Pairs out;
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    size_t j = i;
    while (j < n && is_space(s[j])) ++j;
    size_t k = j;
    if (j < n && is_word(s[j]))
      for (k = j + 1; k < n && is_key(s[k]);) ++k;
    if (k - j < 2 || k >= n || s[k] != ':') {
      i = std::max(i + 1, k);
      continue;
    }
    size_t q = k + 1;
    while (q < n && is_space(s[q])) ++q;
    size_t end = std::string_view::npos;  // end of the value
    if (q < n && s[q] == '"') {           // "(?:\\.|[^\\"])+" then , or the end
      size_t t = q + 1;
      while (t < n && s[t] != '"' && !(s[t] == '\\' && (t + 1 >= n || s[t + 1] == '\n')))
        t += s[t] == '\\' ? 2 : 1;
      if (t < n && s[t] == '"' && t > q + 1 && (t + 1 == n || s[t + 1] == ',')) end = t + 1;
    }
    if (end == std::string_view::npos) end = std::min(s.find(',', q), n);
    out.emplace_back(s.substr(j, k - j), s.substr(q, end - q));
    i = end < n ? end + 1 : n;  // past the comma
  }
  return out;
}

// ^(\d+)x(\d+)$ ($ also before a final newline, as in Python).
bool split_size(std::string_view v, std::string* w, std::string* h) {
  if (!v.empty() && v.back() == '\n') v.remove_suffix(1);
  const size_t x = v.find('x');
  if (x == std::string_view::npos || x == 0 || x + 1 == v.size()) return false;
  for (size_t i = 0; i < v.size(); ++i)
    if (i != x && !std::isdigit(static_cast<unsigned char>(v[i]))) return false;
  *w = std::string(v.substr(0, x));
  *h = std::string(v.substr(x + 1));
  return true;
}

// A1111's unquote: a "..." value that is a valid JSON string is that string.
std::string unquote(std::string_view v) {
  if (v.size() >= 2 && v.front() == '"' && v.back() == '"') {
    const auto j = nlohmann::json::parse(v, nullptr, false);
    if (j.is_string()) return j.get<std::string>();
  }
  return std::string(v);
}

}  // namespace

std::string infotext_quote(const std::string& value) {
  if (value.find_first_of(",:\n") == std::string::npos) return value;
  return nlohmann::json(value).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::map<std::string, std::string> parse_infotext(const std::string& text) {
  std::vector<std::string_view> lines;
  const std::string_view all = strip(text);
  for (size_t at = 0;;) {
    const size_t nl = all.find('\n', at);
    lines.push_back(all.substr(at, nl == std::string_view::npos ? std::string_view::npos : nl - at));
    if (nl == std::string_view::npos) break;
    at = nl + 1;
  }
  Pairs pairs = find_pairs(lines.back());
  if (pairs.size() >= 3)
    lines.pop_back();
  else
    pairs.clear();
  std::string prompt, negative;
  bool in_negative = false;
  for (std::string_view line : lines) {
    line = strip(line);
    if (line.rfind("Negative prompt:", 0) == 0) {
      in_negative = true;
      line = strip(line.substr(16));
    }
    std::string& to = in_negative ? negative : prompt;
    if (!to.empty()) to += '\n';
    to += line;
  }
  std::map<std::string, std::string> out;
  for (const auto& [key, raw] : pairs) {
    if (raw.empty()) continue;  // A1111 skips these (its v[0] fails)
    const std::string v = unquote(raw);
    std::string w, h;
    if (split_size(v, &w, &h)) {
      out[std::string(key) + "-1"] = w;
      out[std::string(key) + "-2"] = h;
    } else {
      out[std::string(key)] = v;
    }
  }
  out["Prompt"] = prompt;
  out["Negative prompt"] = negative;
  return out;
}

}  // namespace vg
