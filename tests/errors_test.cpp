// Every bad input gets a stable error code and a message, never a crash or a
// partial output file.
#include <filesystem>
#include <fstream>

#include "io/atomic_file.h"
#include "test_util.h"
#include "visiongen/visiongen.h"

namespace vg {
namespace {

namespace fs = std::filesystem;

std::string tmp(const std::string& name) {
  fs::path d = fs::path(testing::TempDir()) / "vg_errors";
  fs::create_directories(d);
  return (d / name).string();
}

std::string valid_safetensors_bytes() {
  float data[4] = {1, 2, 3, 4};
  const std::string p = tmp("valid.safetensors");
  write_safetensors(p, {{"a", DType::kF32, {2, 2}, data}});
  return read_file(p);
}

void write_raw(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

ErrorCode open_code(const std::string& path, std::string* msg = nullptr) {
  try {
    SafetensorsFile::open(path);
  } catch (const VgException& e) {
    if (msg) *msg = e.what();
    return e.code();
  }
  return ErrorCode::kOk;
}

std::string with_header(const std::string& json, size_t data_bytes) {
  std::string h = json;
  while (h.size() % 8) h += ' ';
  std::string out(8, '\0');
  uint64_t n = h.size();
  std::memcpy(out.data(), &n, 8);
  return out + h + std::string(data_bytes, '\0');
}

TEST(BadInput, ValidSafetensorsOpens) {
  write_raw(tmp("ok.safetensors"), valid_safetensors_bytes());
  EXPECT_EQ(open_code(tmp("ok.safetensors")), ErrorCode::kOk);
}

TEST(BadInput, TruncatedSafetensors) {
  std::string b = valid_safetensors_bytes();
  write_raw(tmp("trunc.safetensors"), b.substr(0, b.size() - 5));
  std::string msg;
  EXPECT_EQ(open_code(tmp("trunc.safetensors"), &msg), ErrorCode::kCorruptFile);
  EXPECT_NE(msg.find("trunc.safetensors"), std::string::npos) << msg;
  write_raw(tmp("tiny.safetensors"), "abc");
  EXPECT_EQ(open_code(tmp("tiny.safetensors")), ErrorCode::kCorruptFile);
  write_raw(tmp("hdr.safetensors"), b.substr(0, 20));
  EXPECT_EQ(open_code(tmp("hdr.safetensors")), ErrorCode::kCorruptFile);
}

TEST(BadInput, OffsetsOutOfRangeAndOverlapping) {
  write_raw(tmp("range.safetensors"),
            with_header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[8,1000]}})", 16));
  std::string msg;
  EXPECT_EQ(open_code(tmp("range.safetensors"), &msg), ErrorCode::kCorruptFile);
  EXPECT_NE(msg.find("outside"), std::string::npos) << msg;
  write_raw(tmp("overlap.safetensors"),
            with_header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 16));
  EXPECT_EQ(open_code(tmp("overlap.safetensors"), &msg), ErrorCode::kCorruptFile);
  EXPECT_NE(msg.find("overlap"), std::string::npos) << msg;
  write_raw(tmp("size.safetensors"),
            with_header(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8));
  EXPECT_EQ(open_code(tmp("size.safetensors")), ErrorCode::kCorruptFile);
}

TEST(BadInput, WrongDtypeAndBadJson) {
  std::string msg;
  write_raw(tmp("dtype.safetensors"), with_header(R"({"a":{"dtype":"F99","shape":[2],"data_offsets":[0,8]}})", 8));
  EXPECT_EQ(open_code(tmp("dtype.safetensors"), &msg), ErrorCode::kCorruptFile);
  EXPECT_NE(msg.find("dtype"), std::string::npos) << msg;
  write_raw(tmp("json.safetensors"), with_header(R"({"a":{"dtype":)", 8));
  EXPECT_EQ(open_code(tmp("json.safetensors")), ErrorCode::kCorruptFile);
}

TEST(BadInput, MissingComponent) {
  const std::string dir = tmp("novae");
  fs::remove_all(dir);
  fs::copy(test::tiny_model(), dir, fs::copy_options::recursive);
  fs::remove_all(dir + "/vae");
  auto e = Engine::load(dir);
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().code, ErrorCode::kMissingComponent);
  EXPECT_NE(e.error().message.find("vae"), std::string::npos);
}

TEST(BadInput, UnknownFamilyIsNamed) {
  float d[2] = {0, 0};
  write_safetensors(tmp("sdxl.safetensors"), {{"conditioner.embedders.1.model.ln_final.weight", DType::kF32, {2}, d},
                                               {"model.diffusion_model.input_blocks.0.0.weight", DType::kF32, {2}, d}});
  auto e = Engine::load(tmp("sdxl.safetensors"));
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().code, ErrorCode::kUnsupportedModel);
  EXPECT_NE(e.error().message.find("Stable Diffusion XL"), std::string::npos) << e.error().message;
  // FLUX files are run now: a broken one is told apart by its names and reported as incomplete
  write_safetensors(tmp("flux.safetensors"), {{"double_blocks.0.img_attn.qkv.weight", DType::kF32, {2}, d}});
  e = Engine::load(tmp("flux.safetensors"));
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().code, ErrorCode::kCorruptFile);
  EXPECT_NE(e.error().message.find("FLUX"), std::string::npos) << e.error().message;
}

TEST(BadInput, PickleIsRefused) {
  write_raw(tmp("model.ckpt"), std::string("\x80\x02}q\x00.", 6));
  auto e = Engine::load(tmp("model.ckpt"));
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().code, ErrorCode::kUnsupportedFormat);
  EXPECT_NE(e.error().message.find("safetensors"), std::string::npos);
}

TEST(BadInput, MissingPathIsFileNotFound) {
  auto e = Engine::load(tmp("does-not-exist"));
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().code, ErrorCode::kFileNotFound);
}

class BadParams : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto e = Engine::load(test::tiny_model());
    ASSERT_TRUE(e);
    engine = std::move(*e).release();
  }
  static void TearDownTestSuite() { delete engine; }
  ErrorCode code(const GenerateParams& p) {
    Status s = engine->validate(p);
    return s ? ErrorCode::kOk : s.error().code;
  }
  static Engine* engine;
  GenerateParams base() {
    GenerateParams p;
    p.prompt = "x";
    p.width = p.height = 64;
    p.steps = 2;
    return p;
  }
};
Engine* BadParams::engine = nullptr;

TEST_F(BadParams, SizesAndSteps) {
  EXPECT_EQ(code(base()), ErrorCode::kOk);
  auto p = base();
  p.width = 65;  // tiny model: factor 2 (VAE) x 2 (UNet) = 4
  EXPECT_EQ(code(p), ErrorCode::kInvalidArgument);
  Status st = engine->validate(p);
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message.find("multiples of 4"), std::string::npos) << st.error().message;
  p = base();
  p.steps = 0;
  EXPECT_EQ(code(p), ErrorCode::kInvalidArgument);
  p = base();
  p.height = -64;
  EXPECT_EQ(code(p), ErrorCode::kInvalidArgument);
  p = base();
  p.width = 100000;
  EXPECT_EQ(code(p), ErrorCode::kInvalidArgument);
  p = base();
  p.sampler = "no-such-sampler";
  EXPECT_EQ(code(p), ErrorCode::kInvalidArgument);
  p = base();
  p.clip_skip = 6;  // the tiny text encoder has 5 layers
  EXPECT_EQ(code(p), ErrorCode::kInvalidArgument);
}

TEST_F(BadParams, SamplingOptions) {
  auto p = base();
  p.scheduler = "no-such-schedule";
  EXPECT_EQ(code(p), ErrorCode::kInvalidArgument);
  p = base();
  p.rng = "mt";
  EXPECT_EQ(code(p), ErrorCode::kInvalidArgument);
  p = base();
  p.eta = -0.5f;
  EXPECT_EQ(code(p), ErrorCode::kInvalidArgument);
  p = base();
  p.sampler = "lcm";
  p.steps = 60;  // LCM's grid has 50 points
  EXPECT_EQ(code(p), ErrorCode::kInvalidArgument);
}

TEST_F(BadParams, SamplingInfoAndBatchSeedsAreReported) {
  auto p = base();
  p.sampler = "DPM++ 2M Karras";
  p.seed = 5;
  p.batch_size = 2;
  p.eta = 0.4f;
  auto r = engine->generate(p);
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(r->sampling.sampler_effective, "dpmpp_2m");
  EXPECT_EQ(r->sampling.scheduler_effective, "karras");
  EXPECT_EQ(r->sampling.sampler_in, "DPM++ 2M Karras");
  EXPECT_EQ(r->seeds, (std::vector<uint64_t>{5, 6}));
  ASSERT_EQ(r->warnings.size(), 1u);  // DPM++ 2M has no eta
  EXPECT_NE(r->warnings[0].find("eta"), std::string::npos);
  // The same request by ComfyUI names gives the same pixels; philox noise gives others.
  auto q = base();
  q.sampler = "dpmpp_2m";
  q.scheduler = "karras";
  q.seed = 5;
  auto r2 = engine->generate(q);
  ASSERT_TRUE(r2);
  EXPECT_EQ(r2->images[0].pixels, r->images[0].pixels);
  q.rng = "philox";
  auto r3 = engine->generate(q);
  ASSERT_TRUE(r3);
  EXPECT_EQ(r3->sampling.rng, "philox");
  EXPECT_NE(r3->images[0].pixels, r->images[0].pixels);
}

TEST_F(BadParams, GenerateRejectsBeforeWork) {
  auto p = base();
  p.steps = 0;
  auto r = engine->generate(p);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
}

TEST_F(BadParams, CancelStopsWithCode) {
  auto p = base();
  p.steps = 4;
  int calls = 0;
  auto r = engine->generate(p, [&](const Progress& pr) { return ++calls < 3; });
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kCancelled);
}

TEST(BadOutput, UnwritableOutputLeavesNoFile) {
  Image img;
  img.width = img.height = 2;
  img.pixels.assign(12, 128);
  Status s = save_image(img, tmp("no-such-dir/sub/out.png"));
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, ErrorCode::kIoError);
  EXPECT_FALSE(fs::exists(tmp("no-such-dir")));
  s = save_image(img, tmp("out.bmp"));
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, ErrorCode::kInvalidArgument);
  EXPECT_FALSE(fs::exists(tmp("out.bmp")));
}

TEST(BadOutput, FailedRenameLeavesNoTempFile) {
  // The target is an existing directory, so the final rename fails after the
  // data was written: the temp file must be cleaned up.
  const std::string dir = tmp("target_is_dir.png");
  fs::create_directories(dir + "/inside");
  EXPECT_THROW(write_file_atomic(dir, "data"), VgException);
  int leftovers = 0;
  for (auto& e : fs::directory_iterator(fs::path(dir).parent_path()))
    leftovers += e.path().filename().string().find(".tmp-") != std::string::npos;
  EXPECT_EQ(leftovers, 0);
  fs::remove_all(dir);
}

TEST(BadOutput, UncreatableTempFileIsIoError) {
  // A path under a non-directory cannot be created: io_error, nothing written.
  try {
    write_file_atomic("/proc/version/out.png", std::string(1 << 16, 'x'));
    FAIL();
  } catch (const VgException& e) {
    EXPECT_EQ(e.code(), ErrorCode::kIoError);
  }
}

}  // namespace
}  // namespace vg
