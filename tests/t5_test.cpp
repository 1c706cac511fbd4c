#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "io/atomic_file.h"
#include "io/weights.h"
#include "test_util.h"
#include "text/t5_encoder.h"
#include "text/t5_tokenizer.h"

namespace vg {
namespace {

namespace fs = std::filesystem;

std::string flux() { return test::fixtures() + "/flux-tiny"; }
std::string flux_model() { return flux() + "/models/flux-tiny-dev"; }
std::string sd3() { return test::fixtures() + "/sd3-tiny"; }

const nlohmann::json& flux_manifest() { return test::fixture_manifest("flux-tiny"); }

std::vector<int32_t> ids_of(const SafetensorsFile& f, const std::string& name) {
  Tensor t = f.load_f32(name);
  std::vector<int32_t> v;
  for (int64_t i = 0; i < t.numel(); ++i) v.push_back(static_cast<int32_t>(t.data()[i]));
  return v;
}

std::string temp_dir(const std::string& name) {
  const fs::path d = fs::path(testing::TempDir()) / name;
  fs::remove_all(d);
  fs::create_directories(d);
  return d.string();
}

// Every fixture prompt, padded to 32 and 512, and untruncated, as transformers gives them.
void expect_fixture_ids(const T5Tokenizer& tok) {
  auto f = SafetensorsFile::open(flux() + "/tokenizer/tokens.safetensors");
  int checked = 0;
  for (const auto& [name, c] : flux_manifest()["tokenizer"]["cases"].items()) {
    const std::string prompt = c["prompt"];
    std::vector<int32_t> full = tok.encode(prompt);
    full.push_back(tok.eos_id());
    EXPECT_EQ(full, c["t5_untruncated_ids"].get<std::vector<int32_t>>()) << name << ": " << prompt;
    for (int msl : {32, 512})
      EXPECT_EQ(tok.encode_padded(prompt, msl),
                ids_of(*f, name + ".t5.msl" + std::to_string(msl) + ".input_ids"))
          << name << " msl " << msl << ": " << prompt;
    ++checked;
  }
  EXPECT_EQ(checked, 8);
}

TEST(T5Tokenizer, SpieceModelMatchesTransformers) {
  auto tok = T5Tokenizer::from_dir(flux_model() + "/tokenizer_2");
  EXPECT_EQ(tok.source(), "spiece.model");
  expect_fixture_ids(tok);
}

TEST(T5Tokenizer, TokenizerJsonAloneMatchesTransformers) {
  const std::string d = temp_dir("t5_tokenizer_json");
  fs::copy_file(flux_model() + "/tokenizer_2/tokenizer.json", d + "/tokenizer.json");
  auto tok = T5Tokenizer::from_dir(d);
  EXPECT_EQ(tok.source(), "tokenizer.json");
  expect_fixture_ids(tok);
}

// transformers' current converter writes T5's tokenizer.json this way (Precompiled, then runs of spaces
// collapsed and trailing ones stripped; Metaspace without WhitespaceSplit): the same ids for every prompt
// here.
TEST(T5Tokenizer, TokenizerJsonReplaceStripMetaspaceVariant) {
  nlohmann::json j = nlohmann::json::parse(read_file(flux_model() + "/tokenizer_2/tokenizer.json"));
  j["normalizer"] = {{"type", "Sequence"},
                     {"normalizers",
                      {j["normalizer"],
                       {{"type", "Replace"}, {"pattern", {{"Regex", " {2,}"}}}, {"content", " "}},
                       {{"type", "Strip"}, {"strip_left", false}, {"strip_right", true}}}}};
  j["pre_tokenizer"] = {
      {"type", "Metaspace"}, {"replacement", "\u2581"}, {"prepend_scheme", "always"}, {"split", true}};
  const std::string d = temp_dir("t5_tokenizer_json_variant");
  std::ofstream(d + "/tokenizer.json") << j.dump();
  expect_fixture_ids(T5Tokenizer::from_dir(d));
  // "never" really leaves the first word without its word-start marker
  j["pre_tokenizer"]["prepend_scheme"] = "never";
  std::ofstream(d + "/tokenizer.json") << j.dump();
  const auto never = T5Tokenizer::from_dir(d);
  EXPECT_NE(never.encode("a cat"), T5Tokenizer::from_dir(flux_model() + "/tokenizer_2").encode("a cat"));
}

TEST(T5Tokenizer, SpecialIdsAndVocabularyAgreeAcrossSources) {
  const std::string d = temp_dir("t5_tokenizer_json_ids");
  fs::copy_file(flux_model() + "/tokenizer_2/tokenizer.json", d + "/tokenizer.json");
  const auto& t5 = flux_manifest()["tokenizer"]["t5"];
  for (const auto& tok : {T5Tokenizer::from_dir(flux_model() + "/tokenizer_2"), T5Tokenizer::from_dir(d)}) {
    EXPECT_EQ(tok.pad_id(), t5["pad_id"].get<int>());
    EXPECT_EQ(tok.eos_id(), t5["eos_id"].get<int>());
    EXPECT_EQ(tok.vocab_size(), t5["vocab_size"].get<int>());
    // <extra_id_0> is the last id; written in the text it is one token
    EXPECT_EQ(tok.encode("<extra_id_0>"), std::vector<int32_t>{tok.vocab_size() - 1});
    auto ids = tok.encode_padded("a futuristic city skyline at night with neon lights", 6);
    ASSERT_EQ(ids.size(), 6u);
    EXPECT_EQ(ids.back(), tok.eos_id());  // truncation keeps </s> last
    std::vector<int32_t> head = tok.encode("a futuristic city skyline");
    ASSERT_GE(head.size(), 5u);
    head.resize(5);
    EXPECT_EQ(std::vector<int32_t>(ids.begin(), ids.end() - 1), head);
  }
}

TEST(T5Tokenizer, MissingOrCorruptFilesAreReported) {
  EXPECT_EQ(test::code_of([] { T5Tokenizer::from_dir(temp_dir("t5_empty")); }), ErrorCode::kFileNotFound);
  const std::string a = temp_dir("t5_bad_spm");
  std::ofstream(a + "/spiece.model") << "not a model";
  EXPECT_EQ(test::code_of([&] { T5Tokenizer::from_dir(a); }), ErrorCode::kCorruptFile);
  const std::string b = temp_dir("t5_bad_json");
  std::ofstream(b + "/tokenizer.json") << "{\"model\": {\"type\": \"Unigram\", \"vocab\": 3}}";
  EXPECT_EQ(test::code_of([&] { T5Tokenizer::from_dir(b); }), ErrorCode::kCorruptFile);
  std::ofstream(b + "/tokenizer.json") << "{ truncated";
  EXPECT_EQ(test::code_of([&] { T5Tokenizer::from_dir(b); }), ErrorCode::kCorruptFile);
  auto tok = T5Tokenizer::from_dir(flux_model() + "/tokenizer_2");
  EXPECT_EQ(test::code_of([&] { tok.encode_padded("a cat", 0); }), ErrorCode::kInvalidArgument);
}

TEST(T5Encoder, RelativeBucketsFollowTransformers) {
  // small distances are exact, larger ones logarithmic up to the last bucket; keys after the query use the
  // upper half
  EXPECT_EQ(t5_relative_bucket(0, 32, 128), 0);
  EXPECT_EQ(t5_relative_bucket(-7, 32, 128), 7);
  EXPECT_EQ(t5_relative_bucket(7, 32, 128), 23);
  EXPECT_EQ(t5_relative_bucket(-8, 32, 128), 8);
  EXPECT_EQ(t5_relative_bucket(-127, 32, 128), 15);
  EXPECT_EQ(t5_relative_bucket(500, 32, 128), 31);
  EXPECT_EQ(t5_relative_bucket(-12, 32, 128), 9);  // 8 + int(log(1.5)/log(16)*8) = 8 + 1
}

// Max relative error over every fixture output of one model.
double check_model(const std::string& model_dir, const std::string& ref_path, const std::vector<int>& msls,
                   bool bf16 = false) {
  WeightStore w = open_component_weights(model_dir, "text_encoder");
  w.set_compute_bf16(bf16);
  T5Encoder enc(T5Config::from_json_file(model_dir + "/config.json"), w);
  auto ref = SafetensorsFile::open(ref_path);
  double worst = 0;
  int checked = 0;
  for (const std::string p : {"simple", "empty", "long"})
    for (int msl : msls) {
      const std::string n = "t5." + p + ".msl" + std::to_string(msl);
      Tensor out = enc.encode({ids_of(*ref, n + ".input_ids")});
      Tensor want = ref->load_f32(n + ".last_hidden_state");
      EXPECT_EQ(out.shape(), want.shape()) << n;
      worst = std::max(worst, test::rel_err(out, want));
      ++checked;
    }
  EXPECT_EQ(checked, 3 * static_cast<int>(msls.size()));
  return worst;
}

TEST(T5Encoder, FluxT5MatchesTransformers) {
  const double err = check_model(flux_model() + "/text_encoder_2",
                                 flux() + "/text_encoder/text_encoders.safetensors", {32, 512});
  RecordProperty("max_rel_err", std::to_string(err));
  EXPECT_LE(err, 1e-4);
}

TEST(T5Encoder, FluxT5FirstBlockMatchesHiddenStates) {
  const std::string dir = flux_model() + "/text_encoder_2";
  T5Encoder enc(T5Config::from_json_file(dir + "/config.json"),
                open_component_weights(dir, "text_encoder_2"));
  auto ref = SafetensorsFile::open(flux() + "/text_encoder/text_encoders.safetensors");
  auto ids = ids_of(*ref, "t5.simple.msl32.input_ids");
  Tensor hs = ref->load_f32("t5.simple.msl32.hidden_states");  // [3,1,32,64]: embeddings, block 0, final
  const int64_t n = hs.numel() / 3;
  Tensor emb = enc.hidden_after({ids}, 0), b0 = enc.hidden_after({ids}, 1);
  EXPECT_LE(test::max_abs_diff(emb.data(), hs.data(), n), 0.0);
  EXPECT_LE(test::max_abs_diff(b0.data(), hs.data() + n, n) / test::max_abs(hs.data() + n, n), 1e-5);
}

TEST(T5Encoder, Sd3T5MatchesTransformers) {
  const double err = check_model(sd3() + "/models/sd3-tiny/text_encoder_3",
                                 sd3() + "/text_encoder/text_encoders.safetensors", {32, 256});
  RecordProperty("max_rel_err", std::to_string(err));
  EXPECT_LE(err, 1e-4);
}

TEST(T5Encoder, Bf16ComputeStaysClose) {
  const double err = check_model(flux_model() + "/text_encoder_2",
                                 flux() + "/text_encoder/text_encoders.safetensors", {32}, true);
  EXPECT_LE(err, 3e-2);
  EXPECT_GT(err, 0.0);  // really computed in bf16
}

TEST(T5Encoder, LazyReleasedWeightsGiveTheSameOutput) {
  const std::string dir = flux_model() + "/text_encoder_2";
  const T5Config cfg = T5Config::from_json_file(dir + "/config.json");
  WeightStore w = open_component_weights(dir, "text_encoder_2");
  T5Encoder eager(cfg, w), lazy(cfg, w, "", /*lazy=*/true);
  EXPECT_FALSE(lazy.weights_loaded());
  lazy.set_keep_weights(false);
  const std::vector<int32_t> ids = {5, 42, 109, 39, 22, 1, 0, 0};
  Tensor a = eager.encode({ids, ids}), b = lazy.encode({ids, ids});
  EXPECT_FALSE(lazy.weights_loaded());  // made block by block and dropped
  EXPECT_EQ(a.shape(), (Shape{2, 8, 64}));
  EXPECT_EQ(test::max_abs_diff(a.data(), b.data(), a.numel()), 0.0);
  eager.release_weights();
  EXPECT_FALSE(eager.weights_loaded());
  Tensor c = eager.encode({ids, ids});
  EXPECT_EQ(test::max_abs_diff(a.data(), c.data(), c.numel()), 0.0);
}

TEST(T5Encoder, WrongWidthIsShapeMismatch) {
  const std::string dir = flux_model() + "/text_encoder_2";
  T5Config cfg = T5Config::from_json_file(dir + "/config.json");
  cfg.d_ff = 96;
  try {
    T5Encoder enc(cfg, open_component_weights(dir, "text_encoder_2"));
    FAIL() << "accepted d_ff 96 for d_ff 128 weights";
  } catch (const VgException& e) {
    EXPECT_EQ(e.code(), ErrorCode::kShapeMismatch);
    EXPECT_NE(std::string(e.what()).find("d_ff 96"), std::string::npos) << e.what();
  }
  cfg = T5Config::from_json_file(dir + "/config.json");
  cfg.d_model = 32;
  EXPECT_EQ(test::code_of([&] { T5Encoder(cfg, open_component_weights(dir, "text_encoder_2")); }),
            ErrorCode::kShapeMismatch);
  EXPECT_EQ(test::code_of([&] {
              T5Config::from_json(nlohmann::json{{"model_type", "bert"}}, "x");
            }),
            ErrorCode::kUnsupportedModel);
}

T5Config umt5_config() {
  return T5Config::from_json(nlohmann::json{{"model_type", "umt5"},
                                            {"d_model", 32},
                                            {"d_kv", 8},
                                            {"num_heads", 4},
                                            {"d_ff", 48},
                                            {"num_layers", 3},
                                            {"vocab_size", 50},
                                            {"feed_forward_proj", "gated-gelu"}},
                             "umt5 test config");
}

TEST(T5Encoder, Umt5HasARelativeBiasInEveryBlock) {
  const T5Config cfg = umt5_config();
  EXPECT_TRUE(cfg.per_layer_bias);
  EXPECT_TRUE(cfg.gated);
  auto names = [](const T5Config& c) {
    WeightStore w;
    w.make_synthetic(1);
    auto req = std::make_shared<WeightStore::Requests>();
    w.record_requests(req);
    T5Encoder(c, w, "", /*lazy=*/true);
    int biases = 0;
    for (const auto& [n, s] : *req) biases += n.find("relative_attention_bias") != std::string::npos;
    return biases;
  };
  EXPECT_EQ(names(cfg), 3);
  T5Config t5 = cfg;
  t5.per_layer_bias = false;
  EXPECT_EQ(names(t5), 1);
}

TEST(T5Encoder, Umt5AttentionMaskHidesPaddedKeys) {
  WeightStore w;
  w.make_synthetic(7);
  T5Encoder enc(umt5_config(), w);
  const std::vector<int32_t> a = {3, 9, 27, 1, 0, 0}, b = {3, 9, 27, 1, 44, 13};
  const int64_t c = 32, valid = 4;
  Tensor ma = enc.encode({a}, {valid}), mb = enc.encode({b}, {valid});
  // with the mask the first 4 positions cannot see tokens 4..5; without it they can
  EXPECT_EQ(test::max_abs_diff(ma.data(), mb.data(), valid * c), 0.0);
  Tensor ua = enc.encode({a}), ub = enc.encode({b});
  EXPECT_GT(test::max_abs_diff(ua.data(), ub.data(), valid * c), 1e-6);
  for (int64_t i = 0; i < ma.numel(); ++i) ASSERT_TRUE(std::isfinite(ma.data()[i]));
  EXPECT_EQ(test::code_of([&] { enc.encode({a}, {7}); }), ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace vg
