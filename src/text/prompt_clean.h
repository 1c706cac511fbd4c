// The prompt clean-up Wan's pipelines apply before tokenizing (diffusers'
// prompt_clean): ftfy.fix_text when ftfy is installed (it is where the
// reference pipelines run), html.unescape twice, whitespace runs to one
// space, stripped.
#pragma once
#include <string>

namespace vg {

// Python's html.unescape: numeric references (with its replacements for
// invalid ones) and the HTML5 named references, with or without ';' where
// the standard allows.
std::string html_unescape(const std::string& text);

// The parts of ftfy.fix_text (default settings) a prompt meets: text that was
// UTF-8 read as Windows-1252 / Latin-1 ("cafÃ©") decoded again, curly quotes
// made straight, Latin ligatures and full-width forms to plain letters, line
// breaks unified, control characters removed, NFC.
std::string fix_text(const std::string& text);

// Wan's prompt_clean: fix_text, html_unescape twice, every whitespace run ->
// " ", stripped.
std::string wan_prompt_clean(const std::string& text);

}  // namespace vg
