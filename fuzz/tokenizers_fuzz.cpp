// Prompt text (any bytes) through the tokenizers of the DiT families, with the
// fixture models' tokenizer files: T5's and UMT5's SentencePiece unigram
// (FLUX, SD3, Wan) and Qwen's byte-level BPE with its chat template (Z-Image,
// Qwen-Image). The CLIP tokenizer is in the `prompt` harness.
#include "core/error.h"
#include "fuzz/fuzz_input.h"
#include "text/qwen_tokenizer.h"
#include "text/t5_tokenizer.h"

namespace {

const std::string kFixtures = VG_FIXTURES_DIR;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const vg::T5Tokenizer t5 = vg::T5Tokenizer::from_dir(kFixtures + "/flux-tiny/models/flux-tiny-dev/tokenizer_2");
  static const vg::T5Tokenizer umt5 = vg::T5Tokenizer::from_dir(kFixtures + "/wan22-tiny/models/wan22-tiny-ti2v/tokenizer");
  static const vg::QwenTokenizer qwen = vg::QwenTokenizer::from_dir(kFixtures + "/zimage-tiny/models/zimage-tiny/tokenizer");
  const std::string text = vg::fuzz::as_text(data, size);
  try {
    (void)t5.encode_padded(text, 77);
    (void)umt5.encode_padded(text, 64);
    std::vector<int32_t> mask;
    (void)qwen.encode_chat_padded(text, 96, &mask);
    (void)qwen.encode_chat(text, 96, vg::QwenPromptTemplate::qwen_image());
  } catch (const vg::VgException&) {
  }
  return 0;
}
