// The built-in CLIP vocabulary (derived from the embedded merges) is the real
// CLIP vocabulary, and tokenizes like both SDXL tokenizers (fast, transformers 5).
#include <algorithm>
#include <nlohmann/json.hpp>
#include <regex>

#include "io/atomic_file.h"
#include "io/safetensors.h"
#include "test_util.h"
#include "text/clip_tokenizer.h"

namespace vg {
namespace {

std::string sdxl() { return test::fixtures() + "/sdxl-tiny"; }

// The tokenizer cases of sdxl-tiny's manifest.
nlohmann::json sdxl_cases() { return test::fixture_manifest("sdxl-tiny")["stages"]["tokenizer"]["cases"]; }

std::vector<int32_t> ids_of(const SafetensorsFile& f, const std::string& name) {
  Tensor t = f.load_f32(name);
  std::vector<int32_t> v;
  for (int64_t i = 0; i < t.numel(); ++i) v.push_back(static_cast<int32_t>(t.data()[i]));
  return v;
}

TEST(ClipBuiltin, DerivedVocabEqualsTheRealVocabJson) {
  auto tok = ClipTokenizer::builtin();
  auto ref = nlohmann::json::parse(read_file(test::tiny_model() + "/tokenizer/vocab.json"));
  ASSERT_EQ(tok.vocab().size(), ref.size());
  ASSERT_EQ(tok.vocab().size(), 49408u);
  size_t mismatched = 0;
  for (auto& [token, id] : ref.items()) {
    const int32_t mine = tok.token_id(token);
    if (mine != id.get<int32_t>()) {
      if (++mismatched <= 5) ADD_FAILURE() << "'" << token << "': " << mine << " vs " << id;
    }
  }
  EXPECT_EQ(mismatched, 0u);
  EXPECT_EQ(tok.bos_id(), 49406);
  EXPECT_EQ(tok.eos_id(), 49407);
  EXPECT_EQ(tok.pad_id(), 49407);
  EXPECT_EQ(ClipTokenizer::builtin("!").pad_id(), 0);
  EXPECT_EQ(tok.token_id("no such token"), -1);
}

// The sdxl-tiny references come from transformers 5, i.e. the fast tokenizer.
TEST(ClipBuiltin, MatchesBothSdxlTokenizersForEveryCase) {
  auto l = ClipTokenizer::builtin();
  auto g = ClipTokenizer::builtin("!");
  l.set_flavor(ClipTokenizer::Flavor::kFast);
  g.set_flavor(ClipTokenizer::Flavor::kFast);
  auto f = SafetensorsFile::open(sdxl() + "/tokenizer/tokens.safetensors");
  const auto cases = sdxl_cases();
  int checked = 0;
  for (auto& [name, c] : cases.items()) {
    const std::string prompt = c["prompt"];
    EXPECT_EQ(l.encode_padded(prompt), ids_of(*f, name + ".tokenizer.input_ids")) << name << ": " << prompt;
    EXPECT_EQ(g.encode_padded(prompt), ids_of(*f, name + ".tokenizer_2.input_ids")) << name << ": " << prompt;
    ++checked;
  }
  EXPECT_EQ(checked, 8);
  // "wow!!!": a literal "!" is id 0 like the padding, inside the text.
  auto ids = g.encode_padded(cases["punctuation"]["prompt"]);
  const auto eos = std::find(ids.begin(), ids.end(), g.eos_id());
  EXPECT_NE(std::find(ids.begin(), eos, 0), eos);
}

// The slow flavor (the default, as transformers 4 / A1111 / ComfyUI) agrees on
// every case except `unicode`, whose "日本の猫" it splits at each CJK ideograph.
TEST(ClipBuiltin, SlowFlavorDiffersFromFastOnlyOnCjk) {
  auto slow = ClipTokenizer::builtin();
  auto f = SafetensorsFile::open(sdxl() + "/tokenizer/tokens.safetensors");
  const auto cases = sdxl_cases();
  for (auto& [name, c] : cases.items()) {
    const auto ref = ids_of(*f, name + ".tokenizer.input_ids");
    if (name == "unicode") {
      EXPECT_NE(slow.encode_padded(c["prompt"]), ref);
      // Without the ideographs the two agree.
      std::string p = c["prompt"];
      const std::string cjk = "\xe6\x97\xa5\xe6\x9c\xac\xe3\x81\xae\xe7\x8c\xab";  // 日本の猫
      ASSERT_NE(p.find(cjk), std::string::npos);
      p.replace(p.find(cjk), cjk.size(), "");
      auto fast = ClipTokenizer::builtin();
      fast.set_flavor(ClipTokenizer::Flavor::kFast);
      EXPECT_EQ(slow.encode_padded(p), fast.encode_padded(p));
    } else {
      EXPECT_EQ(slow.encode_padded(c["prompt"]), ref) << name;
    }
  }
}

TEST(ClipBuiltin, ConfigAwareVariantReadsThePadToken) {
  auto g = ClipTokenizer::builtin_with_config(sdxl() + "/models/sdxl-tiny/tokenizer_2");
  EXPECT_EQ(g.pad_id(), 0);
  EXPECT_EQ(g.max_length(), 77);
  auto l = ClipTokenizer::builtin_with_config(sdxl() + "/models/sdxl-tiny/tokenizer");
  EXPECT_EQ(l.pad_id(), 49407);
  // Same ids as the folder's own files for the sd1 tokenizer cases.
  auto folder = ClipTokenizer::load(test::tiny_model() + "/tokenizer");
  for (auto& c : test::manifest()["tokenizer"]["cases"])
    EXPECT_EQ(l.encode_padded(c["prompt"]), folder.encode_padded(c["prompt"])) << c["name"];
}

}  // namespace
}  // namespace vg
