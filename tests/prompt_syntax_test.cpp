// A1111 prompt syntax: the documented parse_prompt_attention outputs (its
// docstring), BREAK, 75-token chunking with the comma backtrack, emphasis.
#include "text/prompt_syntax.h"

#include "test_util.h"
#include "text/clip_tokenizer.h"

namespace vg {
namespace {

using Parsed = std::vector<std::pair<std::string, float>>;

const ClipTokenizer& clip_l() {
  static const ClipTokenizer t = ClipTokenizer::builtin();
  return t;
}

std::string repeat(const std::string& word, int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s += (i ? " " : "") + word;
  return s;
}

TEST(PromptSyntax, DocstringExamples) {
  EXPECT_EQ(parse_prompt_attention("normal text"), (Parsed{{"normal text", 1.0f}}));
  EXPECT_EQ(parse_prompt_attention("an (important) word"),
            (Parsed{{"an ", 1.0f}, {"important", 1.1f}, {" word", 1.0f}}));
  EXPECT_EQ(parse_prompt_attention("(unbalanced"), (Parsed{{"unbalanced", 1.1f}}));
  EXPECT_EQ(parse_prompt_attention("\\(literal\\]"), (Parsed{{"(literal]", 1.0f}}));
  EXPECT_EQ(parse_prompt_attention("(unnecessary)(parens)"), (Parsed{{"unnecessaryparens", 1.1f}}));
  EXPECT_EQ(parse_prompt_attention("a (((house:1.3)) [on] a (hill:0.5), sun, (((sky)))."),
            (Parsed{{"a ", 1.0f},
                    {"house", static_cast<float>(1.5730000000000004)},
                    {" ", 1.1f},
                    {"on", 1.0f},
                    {" a ", 1.1f},
                    {"hill", 0.55f},
                    {", sun, ", 1.1f},
                    {"sky", static_cast<float>(1.4641000000000006)},
                    {".", 1.1f}}));
}

TEST(PromptSyntax, BreakEscapesAndUnbalancedBrackets) {
  EXPECT_EQ(parse_prompt_attention("a cat BREAK a dog"),
            (Parsed{{"a cat", 1.0f}, {"BREAK", -1.0f}, {"a dog", 1.0f}}));
  EXPECT_EQ(parse_prompt_attention("BREAK"), (Parsed{{"", 1.0f}, {"BREAK", -1.0f}, {"", 1.0f}}));
  // Only the uppercase, separate word.
  EXPECT_EQ(parse_prompt_attention("a BREAKING break aBREAK"), (Parsed{{"a BREAKING break aBREAK", 1.0f}}));
  EXPECT_EQ(parse_prompt_attention("a,BREAK,b"), (Parsed{{"a,", 1.0f}, {"BREAK", -1.0f}, {",b", 1.0f}}));
  // Inside brackets the BREAK entry is weighted too, so it is no longer a break.
  EXPECT_EQ(parse_prompt_attention("(a BREAK b)"), (Parsed{{"a", 1.1f}, {"BREAK", -1.1f}, {"b", 1.1f}}));
  EXPECT_EQ(parse_prompt_attention("a (cat: 1.5 ) b"), (Parsed{{"a ", 1.0f}, {"cat", 1.5f}, {" b", 1.0f}}));
  EXPECT_EQ(parse_prompt_attention("a (cat:1.5 b"), (Parsed{{"a ", 1.0f}, {"cat:1.5 b", 1.1f}}));
  EXPECT_EQ(parse_prompt_attention("x:1.5) y"), (Parsed{{"x:1.5) y", 1.0f}}));
  EXPECT_EQ(parse_prompt_attention("[[a]] ]b["),
            (Parsed{{"a", static_cast<float>(1 / 1.1 / 1.1)}, {" ]b", 1.0f}}));
  EXPECT_EQ(parse_prompt_attention("a\\b \\\\"), (Parsed{{"ab \\", 1.0f}}));
  EXPECT_EQ(parse_prompt_attention(""), (Parsed{{"", 1.0f}}));
  // A1111 raises on an unparsable weight; here it stays literal text.
  EXPECT_EQ(parse_prompt_attention("(b:..)"), (Parsed{{"b:..)", 1.1f}}));
}

void expect_window(const PromptChunk& c) {
  ASSERT_EQ(c.ids.size(), 77u);
  ASSERT_EQ(c.weights.size(), 77u);
  EXPECT_EQ(c.ids.front(), clip_l().bos_id());
  EXPECT_EQ(c.ids.back(), clip_l().eos_id());
}

TEST(PromptSyntax, ChunksMatchPlainTokenizationForShortPrompts) {
  for (const char* p : {"", "a photograph of an astronaut riding a horse"}) {
    auto chunks = a1111_chunks(clip_l(), p);
    ASSERT_EQ(chunks.size(), 1u) << p;
    EXPECT_EQ(chunks[0].ids, clip_l().encode_padded(p)) << p;
    EXPECT_EQ(chunks[0].weights, std::vector<float>(77, 1.0f));
  }
  // "!" padding (SD2, SDXL's second encoder): pads after the first EOS only.
  auto g = ClipTokenizer::builtin("!");
  EXPECT_EQ(a1111_chunks(g, "a red cube")[0].ids, g.encode_padded("a red cube"));
  // A1111 tokenizes SD2/SDXL-G text with OpenCLIP's tokenizer: "!!!" stays one token, not three pads.
  EXPECT_EQ(a1111_chunks(g, "wow!!!")[0].ids[2], g.token_id("!!!</w>"));
  EXPECT_EQ(g.encode("wow!!!"), (std::vector<int32_t>{g.token_id("wow</w>"), 0, 0, 0}));
  auto w = a1111_chunks(clip_l(), "a (cat:1.5) [dog]")[0];
  EXPECT_EQ(w.ids, clip_l().encode_padded("a cat dog"));
  EXPECT_EQ(std::vector<float>(w.weights.begin(), w.weights.begin() + 5),
            (std::vector<float>{1.0f, 1.0f, 1.5f, static_cast<float>(1 / 1.1), 1.0f}));
}

TEST(PromptSyntax, LongPromptsAndBreakMakeMoreChunks) {
  const int32_t a = clip_l().encode("a")[0];
  auto chunks = a1111_chunks(clip_l(), repeat("a", 80));
  ASSERT_EQ(chunks.size(), 2u);
  for (auto& c : chunks) expect_window(c);
  EXPECT_EQ(std::count(chunks[0].ids.begin(), chunks[0].ids.end(), a), 75);
  EXPECT_EQ(std::count(chunks[1].ids.begin(), chunks[1].ids.end(), a), 5);
  EXPECT_EQ(chunks[1].ids[6], clip_l().eos_id());

  auto br = a1111_chunks(clip_l(), "a cat BREAK a dog");
  ASSERT_EQ(br.size(), 2u);
  for (auto& c : br) expect_window(c);
  EXPECT_EQ(br[0].ids, clip_l().encode_padded("a cat"));
  EXPECT_EQ(br[1].ids, clip_l().encode_padded("a dog"));
  EXPECT_EQ(a1111_chunks(clip_l(), "a cat BREAK").size(), 1u);  // nothing after the BREAK
}

TEST(PromptSyntax, CommaBacktrackMovesTheWordsAfterALateComma) {
  const int32_t a = clip_l().encode("a")[0], b = clip_l().encode("b")[0];
  const int32_t comma = clip_l().token_id(",</w>");
  const std::string p = repeat("a", 70) + ", " + repeat("b", 10);
  auto chunks = a1111_chunks(clip_l(), p);
  ASSERT_EQ(chunks.size(), 2u);
  for (auto& c : chunks) expect_window(c);
  EXPECT_EQ(chunks[0].ids[71], comma);                                       // 70 a's then the comma ...
  EXPECT_EQ(chunks[0].ids[72], clip_l().eos_id());                           // ... then padding
  EXPECT_EQ(std::count(chunks[1].ids.begin(), chunks[1].ids.end(), b), 10);  // every b moved
  EXPECT_EQ(chunks[1].ids[1], b);
  // Disabled, the first chunk is filled up to 75 tokens.
  auto plain = a1111_chunks(clip_l(), p, 0);
  ASSERT_EQ(plain.size(), 2u);
  EXPECT_EQ(std::count(plain[0].ids.begin(), plain[0].ids.end(), b), 4);
  // A comma more than 20 tokens back is not used.
  auto far = a1111_chunks(clip_l(), repeat("a", 50) + ", " + repeat("b", 30));
  ASSERT_EQ(far.size(), 2u);
  EXPECT_EQ(std::count(far[0].ids.begin(), far[0].ids.end(), b), 24);
  EXPECT_EQ(std::count(far[0].ids.begin(), far[0].ids.end(), a), 50);
}

TEST(PromptSyntax, EmphasisScalesTokensAndKeepsTheMean) {
  Tensor z({1, 3, 4});
  for (int i = 0; i < 12; ++i) z.data()[i] = 0.25f * static_cast<float>(i) - 1.0f;
  Tensor before = z.clone();
  const std::vector<float> w{1.0f, 2.0f, 0.5f};
  apply_emphasis(z, w);
  double m0 = 0, m1 = 0;
  for (int i = 0; i < 12; ++i) {
    m0 += before.data()[i];
    m1 += z.data()[i];
  }
  EXPECT_NEAR(m1 / 12, m0 / 12, 1e-6);
  // One common rescale factor on top of the per-token weights.
  const float s = z.data()[0] / before.data()[0];
  for (int i = 0; i < 12; ++i) EXPECT_NEAR(z.data()[i], before.data()[i] * w[i / 4] * s, 1e-5) << i;
  EXPECT_NE(s, 1.0f);
  Tensor bad({1, 2, 4});
  EXPECT_THROW(apply_emphasis(bad, w), VgException);
}

}  // namespace
}  // namespace vg
