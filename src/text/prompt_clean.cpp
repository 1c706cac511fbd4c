#include "text/prompt_clean.h"

#include <unicode/normalizer2.h>
#include <unicode/unistr.h>

#include <vector>

#include "text/utf8_util.h"

namespace vg {

namespace {

std::vector<uint32_t> code_points(const std::string& s) {
  std::vector<uint32_t> cps;
  for (size_t i = 0; i < s.size(); i += utf8_char_len(s, i)) cps.push_back(utf8_decode(s, i));
  return cps;
}

void append_utf8(uint32_t cp, std::string* out) {
  const icu::UnicodeString u(static_cast<UChar32>(cp));
  u.toUTF8String(*out);
}

// The byte a character stands for when UTF-8 was read as Windows-1252 (with
// Latin-1's C1 controls for the five bytes 1252 leaves undefined, as ftfy's
// "sloppy" codec); -1 when it is no such character.
int mojibake_byte(uint32_t cp) {
  static constexpr uint16_t kHigh[32] = {0x20AC, 0x81,   0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021,
                                         0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0x8D,   0x017D, 0x8F,
                                         0x90,   0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
                                         0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x9D,   0x017E, 0x0178};
  if (cp < 0x80 || (cp >= 0xA0 && cp <= 0xFF)) return static_cast<int>(cp);
  for (int i = 0; i < 32; ++i)
    if (kHigh[i] == cp) return 0x80 + i;
  if (cp >= 0x80 && cp <= 0x9F) return static_cast<int>(cp);  // a C1 control stands for its own byte
  return -1;
}

// Sequences of characters whose bytes form one valid multi-byte UTF-8
// character ("Ã©" -> "é", "â€œ" -> "“") decoded again.
std::vector<uint32_t> fix_mojibake(const std::vector<uint32_t>& in) {
  std::vector<uint32_t> out;
  for (size_t i = 0; i < in.size();) {
    const int lead = mojibake_byte(in[i]);
    const int n = lead >= 0xC2 && lead <= 0xDF ? 2 : lead >= 0xE0 && lead <= 0xEF ? 3 : lead >= 0xF0 && lead <= 0xF4 ? 4 : 0;
    bool ok = n > 0 && i + n <= in.size();
    uint32_t cp = ok ? static_cast<uint32_t>(lead) & (0x7F >> n) : 0;
    for (int k = 1; ok && k < n; ++k) {
      const int b = mojibake_byte(in[i + k]);
      ok = b >= 0x80 && b <= 0xBF;
      cp = (cp << 6) | static_cast<uint32_t>(b & 0x3F);
    }
    const uint32_t min_cp = n == 2 ? 0x80 : n == 3 ? 0x800 : 0x10000;
    ok = ok && cp >= min_cp && cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF);
    if (ok) {
      out.push_back(cp);
      i += n;
    } else {
      out.push_back(in[i++]);
    }
  }
  return out;
}

bool is_removed_control(uint32_t c) {
  return c <= 0x08 || c == 0x0B || (c >= 0x0E && c <= 0x1F) || c == 0x7F || (c >= 0x206A && c <= 0x206F) ||
         c == 0xFEFF || (c >= 0xFFF9 && c <= 0xFFFC) || (c >= 0x1D173 && c <= 0x1D17A) || (c >= 0xE0000 && c <= 0xE007F);
}

// Python's str.isspace (what `\s` matches in a str regex).
bool is_python_space(uint32_t c) { return is_unicode_whitespace(c) || (c >= 0x1C && c <= 0x1F); }

std::string nfc(const std::string& s) {
  UErrorCode st = U_ZERO_ERROR;
  const icu::Normalizer2* n = icu::Normalizer2::getNFCInstance(st);
  if (U_FAILURE(st)) return s;
  icu::UnicodeString u = n->normalize(icu::UnicodeString::fromUTF8(s), st);
  if (U_FAILURE(st)) return s;
  std::string out;
  u.toUTF8String(out);
  return out;
}

}  // namespace

std::string fix_text(const std::string& text) {
  // ftfy unescapes HTML first, unless the text has a literal '<' (then it is taken for HTML source)
  const std::string src = text.find('<') == std::string::npos ? html_unescape(text) : text;
  std::string out;
  for (size_t i = 0; i < src.size();) {  // line breaks: \r\n, \r, U+0085, U+2028/9 -> \n
    const uint32_t c = utf8_decode(src, i);
    const size_t len = utf8_char_len(src, i);
    if (c == '\r' && i + 1 < src.size() && src[i + 1] == '\n') {
      i += 1;
      continue;
    }
    if (c == '\r' || c == 0x85 || c == 0x2028 || c == 0x2029)
      out += '\n';
    else
      out.append(src, i, len);
    i += len;
  }
  std::string fixed;
  for (uint32_t c : fix_mojibake(code_points(out))) {
    if (is_removed_control(c)) continue;
    if (c >= 0x80 && c <= 0x9F) {  // a leftover C1 control: the Windows-1252 character it stands for
      static constexpr uint16_t kHigh[32] = {0x20AC, 0, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
                                             0x2039, 0x0152, 0, 0x017D, 0, 0, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
                                             0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0, 0x017E, 0x0178};
      if (kHigh[c - 0x80]) c = kHigh[c - 0x80];
    }
    if (c == 0x02BC || (c >= 0x2018 && c <= 0x201B)) {  // curly single quotes
      fixed += '\'';
    } else if (c >= 0x201C && c <= 0x201F) {  // curly double quotes
      fixed += '"';
    } else if (c >= 0xFB00 && c <= 0xFB06) {  // Latin ligatures
      static const char* kLig[] = {"ff", "fi", "fl", "ffi", "ffl", "\xC5\xBFt", "st"};
      fixed += kLig[c - 0xFB00];
    } else if (c >= 0xFF01 && c <= 0xFF5E) {  // full-width ASCII
      fixed += static_cast<char>(c - 0xFF01 + 0x21);
    } else if (c == 0x3000) {
      fixed += ' ';
    } else {
      append_utf8(c, &fixed);
    }
  }
  return nfc(fixed);
}

std::string wan_prompt_clean(const std::string& text) {
  const std::string t = html_unescape(html_unescape(fix_text(text)));
  std::string out;
  bool space = false;
  for (size_t i = 0; i < t.size();) {
    const size_t len = utf8_char_len(t, i);
    if (is_python_space(utf8_decode(t, i))) {
      space = true;
    } else {
      if (space && !out.empty()) out += ' ';
      space = false;
      out.append(t, i, len);
    }
    i += len;
  }
  return out;
}

}  // namespace vg
