// Qwen tokenizer and Qwen3 / Qwen2.5-VL language-model text encoders against
// the zimage-tiny / qwenimage-tiny fixtures (real transformers output).
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "io/atomic_file.h"
#include "io/weights.h"
#include "test_util.h"
#include "text/qwen_encoder.h"
#include "text/qwen_tokenizer.h"

namespace vg {
namespace {

namespace fs = std::filesystem;

std::string zimage() { return test::fixtures() + "/zimage-tiny"; }
std::string zimage_model() { return zimage() + "/models/zimage-tiny"; }
std::string qwenimage() { return test::fixtures() + "/qwenimage-tiny"; }
std::string qwenimage_model() { return qwenimage() + "/models/qwenimage-tiny"; }

// An I64 fixture tensor, read as stored.
std::vector<int32_t> ids_of(const SafetensorsFile& f, const std::string& name) {
  const TensorInfo& ti = f.info(name);
  EXPECT_EQ(ti.dtype, DType::kI64) << name;
  std::vector<int32_t> v(ti.nbytes / 8);
  for (size_t i = 0; i < v.size(); ++i) {
    int64_t x;
    std::memcpy(&x, ti.data + i * 8, 8);
    v[i] = static_cast<int32_t>(x);
  }
  return v;
}

std::string temp_dir(const std::string& name) {
  const fs::path d = fs::path(testing::TempDir()) / name;
  fs::remove_all(d);
  fs::create_directories(d);
  return d.string();
}

// Every zimage-tiny case: plain ids, and the pipeline's templated ids + mask at 512.
// `skip_added` leaves out prompts with added tokens the tokenizer cannot know.
void expect_zimage_ids(const QwenTokenizer& tok, bool skip_think = false) {
  auto f = SafetensorsFile::open(zimage() + "/tokenizer/tokens.safetensors");
  int checked = 0;
  for (const auto& [name, c] : test::fixture_manifest("zimage-tiny")["tokenizer"]["cases"].items()) {
    const std::string prompt = c["prompt"];
    if (skip_think && prompt.find("think>") != std::string::npos) continue;
    EXPECT_EQ(tok.encode(prompt), ids_of(*f, name + ".raw_ids")) << name;
    std::vector<int32_t> mask;
    EXPECT_EQ(tok.encode_chat_padded(prompt, 512, &mask), ids_of(*f, name + ".input_ids")) << name;
    EXPECT_EQ(mask, ids_of(*f, name + ".attention_mask")) << name;
    ++checked;
  }
  EXPECT_GE(checked, skip_think ? 8 : 10);
}

TEST(QwenTokenizer, FixtureIdsFromTokenizerJson) {
  const QwenTokenizer tok = QwenTokenizer::from_dir(zimage_model() + "/tokenizer");
  EXPECT_EQ(tok.token_id("<|endoftext|>"), tok.pad_id());
  EXPECT_EQ(tok.token_id("<|im_end|>"), tok.eos_id());
  EXPECT_EQ(tok.vocab_size(), test::fixture_manifest("qwenimage-tiny")["tokenizer"]["vocab_size_incl_added"].get<int32_t>());
  expect_zimage_ids(tok);
  // the token strings too (byte-level stand-ins), for one case
  const auto& c = test::fixture_manifest("zimage-tiny")["tokenizer"]["cases"]["unicode"];
  EXPECT_EQ(tok.tokenize(c["prompt"]), c["raw_tokens"].get<std::vector<std::string>>());
}

TEST(QwenTokenizer, FixtureIdsFromVocabAndMerges) {
  // vocab.json + merges.txt + tokenizer_config.json; the added tokens from an
  // added_tokens.json (older Hub layout) made from tokenizer.json's list
  const std::string src = zimage_model() + "/tokenizer", dir = temp_dir("qwen_tok_vm");
  for (const char* f : {"vocab.json", "merges.txt", "tokenizer_config.json"})
    fs::copy(src + "/" + f, dir + "/" + f);
  const auto tj = nlohmann::json::parse(read_file(src + "/tokenizer.json"));
  nlohmann::json added = nlohmann::json::object();
  for (const auto& a : tj["added_tokens"]) added[a["content"].get<std::string>()] = a["id"];
  std::ofstream(dir + "/added_tokens.json") << added.dump();
  expect_zimage_ids(QwenTokenizer::from_dir(dir));
  // without any list of added tokens: Qwen2's 14 specials follow the vocabulary (<think> is unknown then)
  fs::remove(dir + "/added_tokens.json");
  const QwenTokenizer bare = QwenTokenizer::from_dir(dir);
  for (const auto& a : tj["added_tokens"]) {
    if (a["special"].get<bool>()) {
      EXPECT_EQ(bare.token_id(a["content"]), a["id"].get<int32_t>()) << a["content"];
    }
  }
  expect_zimage_ids(bare, /*skip_think=*/true);
}

TEST(QwenTokenizer, QwenImageTemplate) {
  const QwenTokenizer tok = QwenTokenizer::from_dir(qwenimage_model() + "/tokenizer");
  const auto& m = test::fixture_manifest("qwenimage-tiny")["tokenizer"];
  const QwenPromptTemplate t = QwenPromptTemplate::qwen_image();
  const std::string tmpl = m["template"];
  EXPECT_EQ(t.apply("{}"), tmpl);
  EXPECT_EQ(t.drop_tokens, m["drop_idx"].get<int>());
  EXPECT_EQ(static_cast<int>(tok.encode(t.prefix).size()), m["template_prefix_tokens"].get<int>());
  auto f = SafetensorsFile::open(qwenimage() + "/tokenizer/tokens.safetensors");
  int checked = 0;
  for (const auto& [name, c] : m["cases"].items()) {
    const std::string prompt = c["prompt"];
    // padding=True on one prompt: no pads; max_length 1024 + 34 cuts the long one
    EXPECT_EQ(tok.encode_chat(prompt, 1024 + t.drop_tokens, t), ids_of(*f, name + ".input_ids")) << name;
    EXPECT_EQ(tok.encode(prompt), ids_of(*f, name + ".raw_ids")) << name;
    ++checked;
  }
  EXPECT_GE(checked, 10);
}

TEST(QwenTokenizer, BadFilesAndArguments) {
  EXPECT_EQ(test::code_of([] { QwenTokenizer::from_dir(temp_dir("qwen_tok_empty")); }),
            ErrorCode::kMissingComponent);
  const std::string dir = temp_dir("qwen_tok_bad");
  std::ofstream(dir + "/vocab.json") << R"({"a": 0, "b": 1, "ab": 2})";
  std::ofstream(dir + "/merges.txt") << "#version: 0.2\nab\n";
  EXPECT_EQ(test::code_of([&] { QwenTokenizer::from_dir(dir); }), ErrorCode::kCorruptFile);
  std::ofstream(dir + "/merges.txt") << "#version: 0.2\na b\n";
  // no eos/pad token anywhere: Qwen's specials are appended, so this loads
  const QwenTokenizer t = QwenTokenizer::from_dir(dir);
  EXPECT_EQ(t.encode("ab<|im_end|>"), (std::vector<int32_t>{2, t.eos_id()}));
  EXPECT_EQ(test::code_of([&] { t.encode_chat_padded("x", 0, nullptr); }), ErrorCode::kInvalidArgument);
  std::ofstream(dir + "/vocab.json") << "[1, 2";
  EXPECT_EQ(test::code_of([&] { QwenTokenizer::from_dir(dir); }), ErrorCode::kCorruptFile);
}

// --- encoder ---

Tensor rows(const Tensor& t, int64_t first, int64_t n) {
  const int64_t c = t.dim(-1);
  Tensor out({n, c});
  std::copy_n(t.data() + first * c, n * c, out.data());
  return out;
}

int64_t valid_of(const std::vector<int32_t>& mask) {
  int64_t n = 0;
  for (int32_t m : mask) n += m;
  return n;
}

QwenTextEncoder zimage_encoder(bool lazy = false, bool bf16 = false) {
  WeightStore w = open_component_weights(zimage_model() + "/text_encoder", "text_encoder");
  w.set_compute_bf16(bf16);
  return QwenTextEncoder(QwenTextConfig::from_json_file(zimage_model() + "/text_encoder/config.json"), w,
                         "auto", lazy);
}

TEST(QwenEncoder, ZImagePromptEmbeds) {
  const QwenTextEncoder enc = zimage_encoder();
  EXPECT_TRUE(enc.has_qk_norm());
  EXPECT_FALSE(enc.has_qkv_bias());
  EXPECT_EQ(enc.prefix(), "");
  auto f = SafetensorsFile::open(zimage() + "/text_encoder/text_encoder.safetensors");
  for (const char* c : {"simple", "empty", "unicode"}) {
    const std::string n = c;
    const auto ids = ids_of(*f, n + ".input_ids");
    const int64_t valid = valid_of(ids_of(*f, n + ".attention_mask"));
    const Tensor emb = enc.hidden_states(ids, valid, -2);
    const Tensor ref = f->load_f32(n + ".prompt_embeds");
    ASSERT_EQ(emb.shape(), ref.shape()) << n;
    const double e = test::rel_err(emb, ref);
    EXPECT_LE(e, 1e-5) << n;
    const double e_last =
        test::rel_err(enc.hidden_states(ids, valid, -1), f->load_f32(n + ".last_hidden_state_valid"));
    EXPECT_LE(e_last, 1e-5) << n;
    std::printf("[qwen3] %s: prompt_embeds rel %.2e, last_hidden_state rel %.2e\n", c, e, e_last);
  }
  // every hidden state of "simple" (0 = embeddings ... 3 = final norm)
  const Tensor all = f->load_f32("simple.hidden_states_valid");
  const auto ids = ids_of(*f, "simple.input_ids");
  const int64_t n = all.dim(1), valid = valid_of(ids_of(*f, "simple.attention_mask"));
  ASSERT_EQ(n, valid);
  for (int k = 0; k < all.dim(0); ++k) {
    const Tensor ref = rows(all.reshape({all.dim(0) * n, all.dim(2)}), k * n, n);
    EXPECT_LE(test::rel_err(enc.hidden_states(ids, valid, k), ref), 1e-5) << "hidden state " << k;
  }
}

TEST(QwenEncoder, TokenizerToEmbeds) {
  // the whole text path from the prompt string, through encode_chat_padded
  const QwenTokenizer tok = QwenTokenizer::from_dir(zimage_model() + "/tokenizer");
  const QwenTextEncoder enc = zimage_encoder();
  auto f = SafetensorsFile::open(zimage() + "/text_encoder/text_encoder.safetensors");
  std::vector<int32_t> mask;
  const auto ids =
      tok.encode_chat_padded(test::fixture_manifest("zimage-tiny")["tokenizer"]["cases"]["unicode"]["prompt"], 512, &mask);
  EXPECT_LE(test::rel_err(enc.hidden_states(ids, valid_of(mask), -2), f->load_f32("unicode.prompt_embeds")),
            1e-5);
}

TEST(QwenEncoder, LazyReleaseAndBf16) {
  auto f = SafetensorsFile::open(zimage() + "/text_encoder/text_encoder.safetensors");
  const auto ids = ids_of(*f, "simple.input_ids");
  const int64_t valid = valid_of(ids_of(*f, "simple.attention_mask"));
  const Tensor ref = f->load_f32("simple.prompt_embeds");
  const QwenTextEncoder enc = zimage_encoder(/*lazy=*/true);
  EXPECT_FALSE(enc.weights_loaded());
  const Tensor a = enc.hidden_states(ids, valid, -2);
  EXPECT_TRUE(enc.weights_loaded());
  enc.release_weights();
  EXPECT_FALSE(enc.weights_loaded());
  const Tensor b = enc.hidden_states(ids, valid, -2);
  EXPECT_EQ(test::max_abs_diff(a.data(), b.data(), a.numel()), 0.0);
  // padding never reaches the valid rows: the same ids without pads give the same rows
  const std::vector<int32_t> unpadded(ids.begin(), ids.begin() + valid);
  const Tensor c = enc.hidden_states(unpadded, valid, -2);
  EXPECT_EQ(test::max_abs_diff(a.data(), c.data(), a.numel()), 0.0);
  const double e = test::rel_err(zimage_encoder(false, /*bf16=*/true).hidden_states(ids, valid, -2), ref);
  std::printf("[qwen3] bf16 compute: prompt_embeds rel %.2e\n", e);
  EXPECT_LE(e, 5e-2);
  EXPECT_GT(e, 0.0);  // it did compute in bf16
}

TEST(QwenEncoder, QwenImageLanguageModel) {
  // Qwen2.5-VL's LM: "model." prefix, q/k/v biases, no q/k norm, 2 heads / 1 KV head; Qwen-Image
  // takes hidden_states[-1] (final norm) and drops the 34-token prefix.
  WeightStore w = open_component_weights(qwenimage_model() + "/text_encoder", "text_encoder");
  const QwenTextConfig cfg = QwenTextConfig::from_json_file(qwenimage_model() + "/text_encoder/config.json");
  EXPECT_EQ(cfg.mrope_section.size(), 3u);
  const QwenTextEncoder enc(cfg, w);
  EXPECT_EQ(enc.prefix(), "model.");
  EXPECT_TRUE(enc.has_qkv_bias());
  EXPECT_FALSE(enc.has_qk_norm());
  auto f = SafetensorsFile::open(qwenimage() + "/text_encoder/text_encoder.safetensors");
  const int drop = QwenPromptTemplate::qwen_image().drop_tokens;
  for (const char* c : {"simple", "empty", "unicode"}) {
    const std::string n = c;
    const auto ids = ids_of(*f, n + ".input_ids");
    const int64_t valid = valid_of(ids_of(*f, n + ".attention_mask"));
    const Tensor h = enc.hidden_states(ids, valid, -1);
    const Tensor ref = f->load_f32(n + ".prompt_embeds");
    ASSERT_EQ(h.dim(0) - drop, ref.dim(0)) << n;
    const double e = test::rel_err(rows(h, drop, ref.dim(0)), ref);
    EXPECT_LE(e, 1e-5) << n;
    std::printf("[qwen2.5-vl lm] %s: prompt_embeds rel %.2e\n", c, e);
  }
}

TEST(QwenEncoder, BadInputs) {
  const QwenTextEncoder enc = zimage_encoder();
  const std::vector<int32_t> ids{1, 2, 3};
  EXPECT_EQ(test::code_of([&] { enc.hidden_states(ids, 3, 4); }), ErrorCode::kInvalidArgument);
  EXPECT_EQ(test::code_of([&] { enc.hidden_states(ids, 3, -5); }), ErrorCode::kInvalidArgument);
  EXPECT_EQ(test::code_of([&] { enc.hidden_states(ids, 0, -2); }), ErrorCode::kInvalidArgument);
  EXPECT_EQ(test::code_of([&] { enc.hidden_states(ids, 4, -2); }), ErrorCode::kInvalidArgument);
  EXPECT_EQ(test::code_of([&] { enc.hidden_states({1, 100000}, 2, -2); }), ErrorCode::kInvalidArgument);
  // a config that does not fit the weights
  auto j = nlohmann::json::parse(read_file(zimage_model() + "/text_encoder/config.json"));
  WeightStore w = open_component_weights(zimage_model() + "/text_encoder", "text_encoder");
  j["num_hidden_layers"] = 4;
  EXPECT_EQ(test::code_of([&] { QwenTextEncoder(QwenTextConfig::from_json(j, "cfg"), w); }),
            ErrorCode::kShapeMismatch);
  j["num_hidden_layers"] = 3;
  j["head_dim"] = 8;
  EXPECT_EQ(test::code_of([&] { QwenTextEncoder(QwenTextConfig::from_json(j, "cfg"), w); }),
            ErrorCode::kShapeMismatch);
  j["num_key_value_heads"] = 3;
  EXPECT_EQ(test::code_of([&] { QwenTextConfig::from_json(j, "cfg"); }), ErrorCode::kCorruptFile);
}

}  // namespace
}  // namespace vg
