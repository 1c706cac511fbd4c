// Prompt text (any bytes a user or an HTTP client sends): the built-in CLIP
// tokenizer, A1111 emphasis/BREAK syntax and its chunking, Wan's prompt_clean.
#include "core/error.h"
#include "fuzz/fuzz_input.h"
#include "text/clip_tokenizer.h"
#include "text/prompt_clean.h"
#include "text/prompt_syntax.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const vg::ClipTokenizer tok = vg::ClipTokenizer::builtin();
  const std::string text = vg::fuzz::as_text(data, size);
  try {
    (void)tok.encode_padded(text);
    (void)vg::parse_prompt_attention(text);
    (void)vg::a1111_chunks(tok, text);
    (void)vg::wan_prompt_clean(text);
  } catch (const vg::VgException&) {
  }
  return 0;
}
