// Small UTF-8 helpers for the sentencepiece-style tokenizers.
#pragma once
#include <cstdint>
#include <string>

namespace vg {

// Bytes of the character at s[i] (1 for a malformed or truncated sequence).
inline size_t utf8_char_len(const std::string& s, size_t i) {
  const uint8_t c = static_cast<uint8_t>(s[i]);
  const size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 1;
  if (i + len > s.size()) return 1;
  for (size_t k = 1; k < len; ++k)
    if ((static_cast<uint8_t>(s[i + k]) & 0xC0) != 0x80) return 1;
  return len;
}

// Code point at s[i] (U+FFFD for a malformed sequence).
inline uint32_t utf8_decode(const std::string& s, size_t i) {
  const size_t len = utf8_char_len(s, i);
  const uint8_t c = static_cast<uint8_t>(s[i]);
  if (len == 1) return c < 0x80 ? c : 0xFFFD;
  uint32_t cp = c & (0x7F >> len);
  for (size_t k = 1; k < len; ++k) cp = (cp << 6) | (static_cast<uint8_t>(s[i + k]) & 0x3F);
  return cp;
}

// Unicode White_Space (Rust's char::is_whitespace, which the tokenizers library uses).
inline bool is_unicode_whitespace(uint32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
         c == 0x3000;
}

// Malformed bytes become U+FFFD (as sentencepiece reads them; Python strings cannot hold them).
inline std::string utf8_sanitize(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const size_t len = utf8_char_len(s, i);
    if (len == 1 && static_cast<uint8_t>(s[i]) >= 0x80)
      out += "\xEF\xBF\xBD";
    else
      out.append(s, i, len);
    i += len;
  }
  return out;
}

}  // namespace vg
