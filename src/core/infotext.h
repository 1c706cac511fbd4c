// A1111 infotext ("parameters" text in PNGs) beyond writing it: quoting a
// value the way A1111's quote() does, and reading one back the way A1111's
// parse_generation_parameters does (what /sdapi/v1/png-info answers).
#pragma once
#include <map>
#include <string>

namespace vg {

// A value as written after "Key: ": as is, or as a JSON string when it holds
// a comma, colon or newline (so the "Key: value, ..." line stays parseable).
std::string infotext_quote(const std::string& value);

// The text's prompt ("Prompt"), negative prompt ("Negative prompt") and the
// key/value pairs of its last line: values unquoted, and a "WxH" value split
// into "Key-1" / "Key-2" as A1111 does ("Size: 512x768" -> Size-1, Size-2).
// The last line holds the pairs only if it has at least three; otherwise it
// is part of the prompt. Any text parses; nothing throws.
std::map<std::string, std::string> parse_infotext(const std::string& text);

}  // namespace vg
