#include <nlohmann/json.hpp>

#include "io/atomic_file.h"
#include "io/weights.h"
#include "test_util.h"
#include "text/clip_text_model.h"
#include "text/clip_tokenizer.h"

namespace vg {
namespace {


std::vector<int32_t> ids_of(const SafetensorsFile& f, const std::string& name) {
  Tensor t = f.load_f32(name);
  std::vector<int32_t> v;
  for (int64_t i = 0; i < t.numel(); ++i) v.push_back(static_cast<int32_t>(t.data()[i]));
  return v;
}

TEST(ClipTokenizer, MatchesTransformersForEveryCase) {
  auto tok = ClipTokenizer::load(test::tiny_model() + "/tokenizer");
  auto f = SafetensorsFile::open(test::tiny() + "/tokenizer/tokens.safetensors");
  auto cases = test::manifest()["tokenizer"]["cases"];
  int checked = 0;
  for (auto& c : cases) {
    const std::string name = c["name"];
    const std::string prompt = c["prompt"];
    EXPECT_EQ(tok.encode_padded(prompt), ids_of(*f, name + ".input_ids")) << name << ": " << prompt;
    ++checked;
  }
  EXPECT_EQ(checked, 11);
}

TEST(ClipTokenizer, SpecialIdsComeFromConfig) {
  auto tok = ClipTokenizer::load(test::tiny_model() + "/tokenizer");
  EXPECT_EQ(tok.bos_id(), 49406);
  EXPECT_EQ(tok.eos_id(), 49407);
  EXPECT_EQ(tok.pad_id(), 49407);
  auto ids = tok.encode_padded("");
  ASSERT_EQ(ids.size(), 77u);
  EXPECT_EQ(ids[0], 49406);
  EXPECT_EQ(ids[1], 49407);
}

class ClipText : public ::testing::Test {
 protected:
  void SetUp() override {
    auto w = open_component_weights(test::tiny_model() + "/text_encoder", "text_encoder");
    model = std::make_unique<ClipTextModel>(
        ClipTextConfig::from_json_file(test::tiny_model() + "/text_encoder/config.json"), w);
    ref = SafetensorsFile::open(test::tiny() + "/text_encoder/text_encoder.safetensors");
  }
  std::unique_ptr<ClipTextModel> model;
  std::shared_ptr<SafetensorsFile> ref;
};

TEST_F(ClipText, LastAndPenultimateHiddenStatesMatch) {
  int checked = 0;
  for (auto& [name, info] : ref->tensors()) {
    if (name.size() < 10 || name.substr(name.size() - 10) != ".input_ids") continue;
    const std::string c = name.substr(0, name.size() - 10);
    auto ids = ids_of(*ref, name);
    Tensor last = model->encode({ids}, 1);
    Tensor pen = model->encode({ids}, 2);
    Tensor raw = model->hidden_after({ids}, model->config().num_layers - 1);
    EXPECT_LE(test::max_abs_diff(last.data(), ref->load_f32(c + ".last_hidden_state").data(), last.numel()), 1e-4) << c;
    EXPECT_LE(test::max_abs_diff(pen.data(), ref->load_f32(c + ".penultimate_ln").data(), pen.numel()), 1e-4) << c;
    EXPECT_LE(test::max_abs_diff(raw.data(), ref->load_f32(c + ".penultimate_raw").data(), raw.numel()), 1e-4) << c;
    ++checked;
  }
  EXPECT_EQ(checked, 11);
}

TEST_F(ClipText, RejectsOutOfRangeClipSkip) {
  std::vector<int32_t> ids(77, 49407);
  EXPECT_THROW(model->encode({ids}, 0), VgException);
  EXPECT_THROW(model->encode({ids}, 6), VgException);
}

TEST_F(ClipText, LazyModelReleasesWeightsAfterEncodeAndReloadsThemIdentically) {
  auto w = open_component_weights(test::tiny_model() + "/text_encoder", "text_encoder");
  ClipTextModel lazy(ClipTextConfig::from_json_file(test::tiny_model() + "/text_encoder/config.json"), w, "", true);
  EXPECT_FALSE(lazy.weights_loaded());  // checked, not converted
  lazy.set_keep_weights(false);
  std::vector<int32_t> ids(77, 49407);
  ids[0] = 49406;
  const Tensor eager = model->encode({ids}, 1);
  const Tensor first = lazy.encode({ids}, 1);
  EXPECT_FALSE(lazy.weights_loaded());
  const Tensor second = lazy.encode({ids}, 2);
  const Tensor third = lazy.encode({ids}, 1);
  ASSERT_EQ(first.shape(), eager.shape());
  EXPECT_EQ(test::max_abs_diff(first.data(), eager.data(), first.numel()), 0.0);
  EXPECT_EQ(test::max_abs_diff(third.data(), eager.data(), third.numel()), 0.0);
  EXPECT_GT(test::max_abs_diff(second.data(), eager.data(), second.numel()), 0.0);
  lazy.set_keep_weights(true);
  lazy.encode({ids}, 1);
  EXPECT_TRUE(lazy.weights_loaded());
  lazy.release_weights();
  EXPECT_FALSE(lazy.weights_loaded());
}

TEST_F(ClipText, LazyModelStillRejectsWrongShapesWhenOpened) {
  auto w = open_component_weights(test::tiny_model() + "/text_encoder", "text_encoder");
  ClipTextConfig cfg = ClipTextConfig::from_json_file(test::tiny_model() + "/text_encoder/config.json");
  cfg.intermediate_size += 1;
  try {
    ClipTextModel bad(cfg, w, "", true);
    FAIL() << "a config that disagrees with the weights was accepted";
  } catch (const VgException& e) {
    EXPECT_EQ(e.code(), ErrorCode::kShapeMismatch);
    EXPECT_NE(std::string(e.what()).find("fc1"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace vg
