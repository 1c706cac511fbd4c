#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>

#include "text/prompt_clean.h"

namespace vg {

namespace {

struct Entity {
  const char* name;
  const char* text;
};
constexpr Entity kEntities[] = {
#include "text/html_entities.inc"
};

const char* find_entity(const std::string& name) {
  const auto* end = std::end(kEntities);
  const auto* it = std::lower_bound(std::begin(kEntities), end, name,
                                    [](const Entity& e, const std::string& n) { return std::strcmp(e.name, n.c_str()) < 0; });
  return it != end && name == it->name ? it->text : nullptr;
}

void append_utf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    *out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    *out += static_cast<char>(0xC0 | (cp >> 6));
    *out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    *out += static_cast<char>(0xE0 | (cp >> 12));
    *out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    *out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    *out += static_cast<char>(0xF0 | (cp >> 18));
    *out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    *out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    *out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// Windows-1252's characters for bytes 0x80-0x9F (0 = undefined there).
constexpr uint16_t kCp1252High[32] = {0x20AC, 0,      0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021,
                                      0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0,      0x017D, 0,
                                      0,      0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
                                      0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0,      0x017E, 0};

// Python's html._replace_charref for "#123;" / "#x7b" forms.
std::string numeric_reference(uint64_t num) {
  std::string out;
  if (num == 0x00 || num == 0x0D) return num == 0 ? "\xEF\xBF\xBD" : "\r";
  if (num >= 0x80 && num <= 0x9F) {
    const uint16_t c = kCp1252High[num - 0x80];
    append_utf8(c ? c : static_cast<uint32_t>(num), &out);
    return out;
  }
  if ((num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF) return "\xEF\xBF\xBD";
  // code points html.unescape drops: C0/C1 controls but whitespace, noncharacters
  const bool control = (num >= 0x01 && num <= 0x08) || num == 0x0B || (num >= 0x0E && num <= 0x1F) ||
                       (num >= 0x7F && num <= 0x9F);
  const bool nonchar = (num >= 0xFDD0 && num <= 0xFDEF) || (num & 0xFFFE) == 0xFFFE;
  if (control || nonchar) return "";
  append_utf8(static_cast<uint32_t>(num), &out);
  return out;
}

bool is_hex(char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; }
bool is_dec(char c) { return c >= '0' && c <= '9'; }

}  // namespace

std::string html_unescape(const std::string& s) {
  if (s.find('&') == std::string::npos) return s;
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    if (s[i] != '&') {
      out += s[i++];
      continue;
    }
    size_t j = i + 1;
    if (j < s.size() && s[j] == '#') {  // &#123; or &#x7b; (the ';' optional)
      const bool hex = j + 1 < s.size() && (s[j + 1] == 'x' || s[j + 1] == 'X');
      size_t k = j + (hex ? 2 : 1), d = k;
      while (k < s.size() && (hex ? is_hex(s[k]) : is_dec(s[k]))) ++k;
      if (k == d) {
        out += s[i++];
        continue;
      }
      uint64_t num = 0;
      for (size_t q = d; q < k; ++q) {
        num = num * (hex ? 16 : 10) + static_cast<uint64_t>(is_dec(s[q]) ? s[q] - '0' : std::tolower(s[q]) - 'a' + 10);
        num = std::min<uint64_t>(num, 0x110000);  // anything larger is invalid anyway
      }
      out += numeric_reference(num);
      i = k < s.size() && s[k] == ';' ? k + 1 : k;
      continue;
    }
    // named: up to 32 characters other than tab, newline, form feed, space, <, &, #, ;, then an optional ';'
    size_t k = j;
    while (k < s.size() && k - j < 32 && !std::strchr("\t\n\f <&#;", s[k])) ++k;
    if (k == j) {
      out += s[i++];
      continue;
    }
    std::string name = s.substr(j, k - j);
    if (k < s.size() && s[k] == ';') name += ';', ++k;
    if (const char* t = find_entity(name)) {
      out += t;
    } else {  // the longest known prefix (legacy names without ';'), the rest kept
      size_t x = name.size() - 1;
      const char* found = nullptr;
      for (; x > 1; --x)
        if ((found = find_entity(name.substr(0, x)))) break;
      out += found ? std::string(found) + name.substr(x) : "&" + name;
    }
    i = k;
  }
  return out;
}

}  // namespace vg
