// A1111 infotext (the PNG "parameters" text /sdapi/v1/png-info parses): any
// text through parse_infotext; then, with the input split at \x01 into a
// prompt, a negative prompt and a sampler, format_infotext -> parse_infotext
// must give them back wherever A1111's format can (lines without surrounding
// blanks, none starting "Negative prompt:", a first line that is not empty).
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "core/infotext.h"
#include "fuzz/fuzz_input.h"
#include "visiongen/params.h"

namespace {

bool blank(char c) { return c == ' ' || (c >= '\t' && c <= '\r') || (c >= '\x1c' && c <= '\x1f'); }

bool round_trips(const std::string& s) {
  if (s.empty()) return true;
  if (s[0] == '\n') return false;
  for (size_t at = 0; at <= s.size();) {
    size_t nl = s.find('\n', at);
    if (nl == std::string::npos) nl = s.size();
    const std::string line = s.substr(at, nl - at);
    if (!line.empty() && (blank(line.front()) || blank(line.back()))) return false;
    if (line.rfind("Negative prompt:", 0) == 0) return false;
    at = nl + 1;
  }
  return true;
}

// Sampler names come back when written as is or quoted as a JSON string.
// A value of the form 123x456 is a size to A1111: it comes back as "Key-1" and "Key-2".
bool value_round_trips(const std::string& v) {
  if (v.empty() || blank(v.front()) || v.front() == '"') return false;
  const std::string d = !v.empty() && v.back() == '\n' ? v.substr(0, v.size() - 1) : v;  // Python's $
  const size_t x = d.find('x');
  if (x != std::string::npos && x > 0 && x + 1 < d.size() && d.find_first_not_of("0123456789") == x &&
      d.find_first_not_of("0123456789", x + 1) == std::string::npos)
    return false;
  try {
    (void)nlohmann::json(v).dump();  // quoting needs valid UTF-8
  } catch (const nlohmann::json::exception&) {
    return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text = vg::fuzz::as_text(data, size);
  (void)vg::parse_infotext(text);
  vg::GenerateParams p;
  size_t a = text.find('\x01'), b = a == std::string::npos ? a : text.find('\x01', a + 1);
  p.prompt = text.substr(0, a);
  if (a != std::string::npos) p.negative_prompt = text.substr(a + 1, b == std::string::npos ? b : b - a - 1);
  if (b != std::string::npos) p.sampler = text.substr(b + 1);
  p.steps = static_cast<int>(size);
  const uint64_t seed = size * 2654435761u;
  auto m = vg::parse_infotext(vg::format_infotext(p, seed, 64, static_cast<int>(size % 97) + 1, "", ""));
  if (m["Steps"] != std::to_string(p.steps) || m["Seed"] != std::to_string(seed) || m["Size-1"] != "64" ||
      m["Size-2"] != std::to_string(size % 97 + 1))
    std::abort();
  if (round_trips(p.prompt) && round_trips(p.negative_prompt) && m["Prompt"] != p.prompt) std::abort();
  if (round_trips(p.prompt) && round_trips(p.negative_prompt) && m["Negative prompt"] != p.negative_prompt)
    std::abort();
  if (value_round_trips(p.sampler) && m["Sampler"] != p.sampler) std::abort();
  return 0;
}
