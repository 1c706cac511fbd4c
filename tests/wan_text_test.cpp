// Wan's prompt path vs diffusers/transformers (wan22-tiny fixture): prompt_clean
// (ftfy + double html.unescape + whitespace), the UMT5 tokenizer from
// spiece.model and from tokenizer.json, UMT5EncoderModel and the pipeline's
// zeroed padding rows.
#include "pipelines/dit_components.h"
#include "pipelines/wan_prompt.h"
#include "text/prompt_clean.h"
#include "test_util.h"

namespace vg {
namespace {

std::string wan() { return test::fixtures() + "/wan22-tiny"; }
std::string model_dir() { return wan() + "/models/wan22-tiny-ti2v"; }

std::vector<int32_t> ids_of(const Tensor& t) {
  std::vector<int32_t> v(static_cast<size_t>(t.numel()));
  for (int64_t i = 0; i < t.numel(); ++i) v[i] = static_cast<int32_t>(t.data()[i]);
  return v;
}

TEST(WanText, PromptCleanMatchesDiffusers) {
  const auto& cases = test::fixture_manifest("wan22-tiny")["stages"]["tokenizer"]["cases"];
  int n = 0;
  for (const auto& [name, c] : cases.items()) {
    EXPECT_EQ(wan_prompt_clean(c["prompt"].get<std::string>()), c["prompt_clean"].get<std::string>()) << name;
    ++n;
  }
  EXPECT_EQ(n, 8);
  // Python's html.unescape rules: numeric forms, legacy names without ';', longest known prefix, unknown kept
  EXPECT_EQ(html_unescape("&#65;&#x42;&#X43 &#128; &eacute &ampx &notit; &notin; &bogus; &#0; & a"),
            "ABC \xE2\x82\xAC \xC3\xA9 &x \xC2\xACit; \xE2\x88\x89 &bogus; \xEF\xBF\xBD & a");
  // ftfy's fixes: mojibake of a curly quote, ligatures, full-width letters, controls, line breaks
  EXPECT_EQ(wan_prompt_clean("\xC3\xA2\xE2\x82\xAC\xC5\x93hi\xC3\xA2\xE2\x82\xAC\xC2\x9D \xEF\xAC\x81ne "
                             "\xEF\xBC\xA1\xEF\xBC\xA2 a\x01" "b\r\nc"),
            "\"hi\" fine AB ab c");
  EXPECT_EQ(wan_prompt_clean("caf\xC3\xA9 na\xC3\xAFve"), "caf\xC3\xA9 na\xC3\xAFve");  // correct text unchanged
}

TEST(WanText, TokenIdsMatchTransformersFromBothFiles) {
  auto ref = SafetensorsFile::open(wan() + "/tokenizer/tokens.safetensors");
  const auto& cases = test::fixture_manifest("wan22-tiny")["stages"]["tokenizer"]["cases"];
  auto sp = load_t5_tokenizer({model_dir() + "/tokenizer"}, "Wan");
  ASSERT_EQ(sp->source(), "spiece.model");
  const std::string json_only = ::testing::TempDir() + "/wan_tok_json";
  std::filesystem::create_directories(json_only);
  for (const char* f : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"})
    std::filesystem::copy_file(model_dir() + "/tokenizer/" + f, json_only + "/" + f,
                               std::filesystem::copy_options::overwrite_existing);
  auto tj = load_t5_tokenizer({json_only}, "Wan");
  ASSERT_EQ(tj->source(), "tokenizer.json");
  for (const auto& [name, c] : cases.items()) {
    const std::string cleaned = wan_prompt_clean(c["prompt"].get<std::string>());
    const std::vector<int32_t> want = ids_of(ref->load_f32(name + ".input_ids"));
    EXPECT_EQ(sp->encode_padded(cleaned, 512), want) << name;
    EXPECT_EQ(tj->encode_padded(cleaned, 512), want) << name << " (tokenizer.json)";
    EXPECT_EQ(sp->encode_padded(cleaned, 16), ids_of(ref->load_f32(name + ".input_ids_max16"))) << name;
    if (ref->has(name + ".input_ids_uncleaned"))
      EXPECT_EQ(sp->encode_padded(c["prompt"].get<std::string>(), 512), ids_of(ref->load_f32(name + ".input_ids_uncleaned")))
          << name;
  }
}

TEST(WanText, Umt5PromptEmbedsMatchThePipeline) {
  auto ref = SafetensorsFile::open(wan() + "/text_encoder/text_encoder.safetensors");
  auto enc = load_t5_component({model_dir() + "/text_encoder", ""}, false, "text_encoder");
  ASSERT_TRUE(enc->config().per_layer_bias);
  for (const char* name : {"short", "long", "empty", "unicode"}) {
    const std::string p = name;
    const std::vector<int32_t> ids = ids_of(ref->load_f32(p + ".input_ids"));
    const Tensor mask = ref->load_f32(p + ".attention_mask");
    int64_t valid = 0;
    for (int64_t i = 0; i < mask.numel(); ++i) valid += mask.data()[i] > 0.5f;
    const Tensor last = enc->encode({ids}, {valid});
    EXPECT_LE(test::rel_err(last, ref->load_f32(p + ".last_hidden_state")), 1e-5) << name;
    EXPECT_LE(test::rel_err(wan_prompt_states(*enc, ids, valid), ref->load_f32(p + ".prompt_embeds")), 1e-5) << name;
  }
  // from text, at max_sequence_length 32; the long prompt is cut with a warning
  auto tok = load_t5_tokenizer({model_dir() + "/tokenizer"}, "Wan");
  std::vector<std::string> warnings;
  const Tensor s32 = wan_encode_prompt(*tok, *enc, "a cat walks on the grass", 32, &warnings);
  EXPECT_LE(test::rel_err(s32, ref->load_f32("short.prompt_embeds_max32")), 1e-5);
  EXPECT_TRUE(warnings.empty());
  const std::string long_prompt = test::fixture_manifest("wan22-tiny")["stages"]["tokenizer"]["cases"]["long"]["prompt"];
  const Tensor l = wan_encode_prompt(*tok, *enc, long_prompt, 512, &warnings);
  EXPECT_LE(test::rel_err(l, ref->load_f32("long.prompt_embeds")), 1e-5);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("589"), std::string::npos) << warnings[0];
}

}  // namespace
}  // namespace vg
