// `visiongen convert ... --type`: sd1-tiny written as GGUF must have the
// structure of stable-diffusion.cpp's file (../shared/fixtures/gguf/models),
// sd.cpp's Q8_0 bytes, read back within each type's error and generate.
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "core/hash.h"
#include "io/gguf.h"
#include "io/safetensors.h"
#include "io/gguf_writer.h"
#include "pipelines/gguf_convert.h"
#include "pipelines/ldm_checkpoint.h"
#include "quant/ggml_types.h"
#include "quant/quantize.h"
#include "test_util.h"
#include "visiongen/visiongen.h"

namespace vg {
namespace {

namespace fs = std::filesystem;

std::string gdir() { return test::fixtures() + "/gguf"; }

// One temp folder per test process (removed at exit): the sd1-tiny single
// file and its GGUFs.
struct Work {
  std::string dir;
  Work() {
    dir = (fs::temp_directory_path() / ("vg_gconv_" + std::to_string(getpid()))).string();
    fs::create_directories(dir);
    convert_diffusers_to_ldm(test::tiny_model(), dir + "/sd1-tiny.safetensors");
    for (const char* t : {"q8_0", "q4_0"}) {
      GgufConvertOptions o;
      o.type = t;
      convert_to_gguf(dir + "/sd1-tiny.safetensors", dir + "/sd1-tiny-" + t + ".gguf", o);
    }
  }
  ~Work() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
};
const std::string& work() {
  static const Work w;
  return w.dir;
}

std::vector<std::string> files_in(const std::string& dir) {
  std::vector<std::string> v;
  for (const auto& e : fs::directory_iterator(dir)) v.push_back(e.path().filename().string());
  return v;
}

TEST(GgufConvert, Q8_0FileIsByteIdenticalToStableDiffusionCpp) {
  const std::string ours = work() + "/sd1-tiny-q8_0.gguf", theirs = gdir() + "/models/sd1-tiny-q8_0.gguf";
  auto a = GgufFile::open(ours), b = GgufFile::open(theirs);
  const auto j = nlohmann::json::parse(read_file(gdir() + "/models/sd1-tiny-q8_0.tensors.json"));
  EXPECT_EQ(a->kv().size(), 0u);
  EXPECT_EQ(a->data_offset(), j["header"]["data_offset"].get<size_t>());
  ASSERT_EQ(a->tensors().size(), j["tensors"].size());
  // Tensor infos: name, type, shape, offset, bytes.
  const uint8_t* base = a->tensors().begin()->second.data;
  for (const auto& t : j["tensors"]) base = std::min(base, a->has(t["name"]) ? a->info(t["name"]).data : base);
  for (const auto& t : j["tensors"]) {
    const std::string name = t["name"];
    ASSERT_TRUE(a->has(name)) << name;
    const TensorInfo& x = a->info(name);
    EXPECT_EQ(ggml_type_name(x.ggml_type), t["type"].get<std::string>()) << name;
    EXPECT_EQ(static_cast<size_t>(x.data - base), t["offset_in_data"].get<size_t>()) << name;
    const TensorInfo& y = b->info(name);
    EXPECT_EQ(x.ggml_type, y.ggml_type) << name;
    EXPECT_EQ(x.shape, y.shape) << name;
    EXPECT_EQ(x.nbytes, y.nbytes) << name;
    if (x.nbytes == y.nbytes) EXPECT_EQ(std::memcmp(x.data, y.data, x.nbytes), 0) << name << " bytes differ";
  }
  // Same names, order, types, shapes, offsets and bytes: the whole file.
  EXPECT_EQ(sha256_file_hex(ours), sha256_file_hex(theirs));
}

TEST(GgufConvert, Q4_0FollowsTheQ8_0PatternAndReadsBackWithinError) {
  const auto j = nlohmann::json::parse(read_file(gdir() + "/models/sd1-tiny-q8_0.tensors.json"));
  auto q4 = GgufFile::open(work() + "/sd1-tiny-q4_0.gguf");
  auto q8 = GgufFile::open(work() + "/sd1-tiny-q8_0.gguf");
  auto src = SafetensorsFile::open(work() + "/sd1-tiny.safetensors");
  ASSERT_EQ(q4->tensors().size(), j["tensors"].size());
  EXPECT_EQ(q4->alignment(), 32u);
  const uint8_t* base = q4->tensors().begin()->second.data;
  size_t expect_off = 0;
  for (const auto& t : j["tensors"]) {  // data order = the fixture's (sorted) order
    const std::string name = t["name"];
    ASSERT_TRUE(q4->has(name)) << name;
    const TensorInfo& x = q4->info(name);
    const std::string want = t["type"] == "Q8_0" ? "Q4_0" : t["type"].get<std::string>();
    EXPECT_EQ(ggml_type_name(x.ggml_type), want) << name;
    EXPECT_EQ(x.shape, Shape(t["shape_torch"].get<std::vector<int64_t>>())) << name;
    EXPECT_EQ(static_cast<size_t>(x.data - base), expect_off) << name;  // packed, 32-aligned
    expect_off += (x.nbytes + 31) / 32 * 32;
  }
  // Every tensor equals the source within its type's error (float32 exactly).
  double worst4 = 0, worst8 = 0;
  for (const auto& [name, info] : q4->tensors()) {
    const Tensor s = src->load_f32(name);
    for (auto* f : {q4.get(), q8.get()}) {
      const Tensor g = f->load_f32(name);
      ASSERT_EQ(g.numel(), s.numel()) << name;
      double se = 0, ss = 0;
      for (int64_t i = 0; i < s.numel(); ++i) {
        se += std::pow(static_cast<double>(g.data()[i]) - s.data()[i], 2);
        ss += std::pow(static_cast<double>(s.data()[i]), 2);
      }
      const double rel = ss > 0 ? std::sqrt(se / ss) : std::sqrt(se);
      const int type = f->info(name).ggml_type;
      if (type == kGgmlF32) EXPECT_EQ(se, 0) << name;
      if (type == kGgmlQ4_0) worst4 = std::max(worst4, rel);
      if (type == kGgmlQ8_0) worst8 = std::max(worst8, rel);
    }
  }
  std::printf("worst per-tensor rel RMS: Q4_0 %.4f, Q8_0 %.4f\n", worst4, worst8);
  EXPECT_LT(worst8, 0.01);
  EXPECT_LT(worst4, 0.15);
  EXPECT_GT(worst4, 0.0);  // really quantised
}

TEST(GgufConvert, ManifestRecordsSourceTypesAndCounts) {
  const auto m = nlohmann::json::parse(read_file(work() + "/sd1-tiny-q4_0.gguf.json"));
  EXPECT_EQ(m["source"]["sha256"], sha256_file_hex(work() + "/sd1-tiny.safetensors"));
  EXPECT_EQ(m["output"]["sha256"], sha256_file_hex(work() + "/sd1-tiny-q4_0.gguf"));
  EXPECT_EQ(m["visiongen_version"], version());
  EXPECT_EQ(m["type"], "Q4_0");
  const auto& types = m["tensor_types"];
  EXPECT_EQ(types.value("model.diffusion_model.input_blocks.0.0.weight", ""), "F32");  // conv: ne0 = 3
  EXPECT_EQ(types.value("model.diffusion_model.out.0.weight", ""), "Q4_0");            // GroupNorm weight
  EXPECT_EQ(types.value("model.diffusion_model.time_embed.0.weight", ""), "F32");      // kept by name
  EXPECT_EQ(m["counts"]["tensors"], 512);
  EXPECT_EQ(m["counts"]["by_type"].value("Q4_0", 0) + m["counts"]["by_type"].value("F32", 0), 512);
  EXPECT_EQ(types.size(), 512u);
}

TEST(GgufConvert, ConvertedFileGeneratesAndUnetOnlyFileLoads) {
  GenerateParams p;
  p.prompt = "a red fox";
  p.steps = 2;
  p.seed = 5;
  p.width = p.height = 32;
  auto e = Engine::load(work() + "/sd1-tiny-q4_0.gguf");
  ASSERT_TRUE(e) << e.error().to_string();
  auto r = (*e)->generate(p);
  ASSERT_TRUE(r) << r.error().to_string();
  // --unet-only straight from the diffusers folder (through the LDM names).
  GgufConvertOptions o;
  o.type = "q8_0";
  o.unet_only = true;
  const std::string unet = work() + "/unet-q8_0.gguf";
  convert_to_gguf(test::tiny_model(), unet, o);
  auto u = GgufFile::open(unet);
  auto ref = GgufFile::open(gdir() + "/models/sd1-tiny-unet-q4_0.gguf");
  ASSERT_EQ(u->tensors().size(), ref->tensors().size());
  for (const auto& [name, info] : u->tensors()) EXPECT_TRUE(ref->has(name)) << name;
  LoadOptions lo;
  lo.unet_file = unet;
  auto f = Engine::load(test::tiny_model(), lo);
  ASSERT_TRUE(f) << f.error().to_string();
  auto a = (*f)->generate(p);
  ASSERT_TRUE(a) << a.error().to_string();
  EXPECT_EQ(a->images[0].pixels.size(), r->images[0].pixels.size());
}

// sd.cpp's per-tensor rule, against the type of every tensor of its f16,
// q4_0 and q4_K sd1-tiny files (float32 source: unconverted tensors are F32).
TEST(GgufConvert, PerTensorRuleMatchesStableDiffusionCppForF16Q4_0Q4_K) {
  const auto j = nlohmann::json::parse(read_file(gdir() + "/sd1/sdcpp_tensor_types.json"));
  int checked = 0;
  for (const auto& [file, tensors] : j["files"].items()) {
    const std::string type = file.substr(file.rfind('-') + 1, file.size() - file.rfind('-') - 6);  // "q4_K"
    const int target = gguf_type_from_name(type);
    for (const auto& [name, desc] : tensors.items()) {
      const std::string d = desc;  // "Q4_0 ne=[32, 77]"
      std::vector<int64_t> ne;
      for (size_t p = d.find('[') + 1; p < d.size() && d[p] != ']';) {
        size_t q = d.find_first_of(",]", p);
        ne.push_back(std::stoll(d.substr(p, q - p)));
        p = d[q] == ',' ? q + 2 : q;
      }
      const std::string want = d.substr(0, d.find(' '));
      EXPECT_EQ(ggml_type_name(sdcpp_should_convert(name, ne, target) ? target : kGgmlF32), want)
          << file << " " << name;
      ++checked;
    }
  }
  EXPECT_EQ(checked, 3 * 512);
}

TEST(GgufConvert, WholeFolderAsUnetNamesTheConvertCommand) {
  LoadOptions lo;
  lo.unet_file = test::tiny_model();
  auto e = Engine::load(test::tiny_model(), lo);
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().code, ErrorCode::kModelNotConverted);
  EXPECT_NE(e.error().message.find("visiongen convert " + test::tiny_model() + " "), std::string::npos)
      << e.error().message;
  EXPECT_NE(e.error().message.find("--unet-only"), std::string::npos);
  lo.unet_file = test::tiny_model() + "/unet/";  // a component folder: pass its file
  e = Engine::load(test::tiny_model(), lo);
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().code, ErrorCode::kInvalidArgument);
}

ErrorCode convert_error(const std::string& src, const std::string& out, const std::string& type) {
  GgufConvertOptions o;
  o.type = type;
  try {
    convert_to_gguf(src, out, o);
  } catch (const VgException& e) {
    return e.code();
  }
  return ErrorCode::kOk;
}

TEST(GgufConvert, BadTypeAndOutputPathsFailWithoutPartialFiles) {
  const std::string src = work() + "/sd1-tiny.safetensors";
  const std::string dir = work() + "/bad";
  fs::create_directories(dir);
  EXPECT_EQ(convert_error(src, dir + "/x.gguf", "q7_0"), ErrorCode::kInvalidArgument);
  EXPECT_EQ(convert_error(src, dir + "/missing/x.gguf", "q8_0"), ErrorCode::kIoError);
  EXPECT_EQ(convert_error(src, src + "/x.gguf", "q8_0"), ErrorCode::kIoError);  // parent is a file
  EXPECT_EQ(convert_error(dir + "/nope.safetensors", dir + "/x.gguf", "q8_0"), ErrorCode::kFileNotFound);
  // A failure while writing (here: a tensor producer throwing, as a full disk
  // does inside write) leaves neither the output nor a temp file.
  GgufTensorToWrite t{"a.weight", kGgmlF32, {32}, [](uint8_t*) { throw std::runtime_error("boom"); }};
  EXPECT_THROW(write_gguf(dir + "/y.gguf", {}, {t}), std::runtime_error);
  EXPECT_TRUE(files_in(dir).empty()) << files_in(dir).front();
}

TEST(GgufConvert, CliTypeFlagWritesGgufAndManifestOrFailsCleanly) {
  const std::string dir = work() + "/cli";
  fs::create_directories(dir);
  auto r = test::run_cli("convert " + work() + "/sd1-tiny.safetensors " + dir + "/m.gguf --type Q8_0");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(sha256_file_hex(dir + "/m.gguf"), sha256_file_hex(work() + "/sd1-tiny-q8_0.gguf"));
  EXPECT_TRUE(fs::exists(dir + "/m.gguf.json"));
  r = test::run_cli("convert " + work() + "/sd1-tiny.safetensors " + dir + "/bad.gguf --type q9_k");
  EXPECT_EQ(r.code, 10 + static_cast<int>(ErrorCode::kInvalidArgument)) << r.out;  // exit 10 + code
  EXPECT_NE(r.out.find("q4_k"), std::string::npos) << r.out;  // lists the choices
  r = test::run_cli("convert " + work() + "/sd1-tiny.safetensors " + dir + "/no/such/x.gguf --type q8_0");
  EXPECT_EQ(r.code, 10 + static_cast<int>(ErrorCode::kIoError)) << r.out;
  EXPECT_EQ(files_in(dir).size(), 2u);  // m.gguf and its manifest only
}

TEST(GgufConvert, WriterKeepsKvAndAlignmentAsGgmlReads) {
  const std::string path = work() + "/kv.gguf";
  std::vector<float> v(64);
  for (int i = 0; i < 64; ++i) v[i] = static_cast<float>(i) / 8 - 2;
  GgufTensorToWrite a{"a.weight", kGgmlF32, {8, 4}, [&](uint8_t* d) { std::memcpy(d, v.data(), 128); }};
  GgufTensorToWrite b{"b.weight", kGgmlQ8_0, {32, 2}, [&](uint8_t* d) { quantize_row(kGgmlQ8_0, v.data(), d, 64); }};
  write_gguf(path, {{"general.architecture", gguf_string("test")}}, {a, b}, 64);
  auto f = GgufFile::open(path);
  EXPECT_EQ(f->alignment(), 64u);
  EXPECT_EQ(f->get_string("general.architecture"), "test");
  EXPECT_EQ(f->data_offset() % 64, 0u);
  EXPECT_EQ(f->info("a.weight").shape, Shape({4, 8}));
  const Tensor got = f->load_f32("a.weight");
  EXPECT_EQ(std::memcmp(got.data(), v.data(), 128), 0);
  EXPECT_EQ(fs::file_size(path) % 64, 0u);
}

// SDXL: the SGM single file as a GGUF (sd.cpp layout: SGM names, no KV) goes
// through the SGM loader by its tensor names. F32 keeps every value: the same
// image as the safetensors file; Q8_0 stays close.
TEST(GgufConvert, SdxlGgufLoadsThroughTheSgmLoader) {
  const std::string xl = test::fixtures() + "/sdxl-tiny/models";
  GenerateParams p;
  p.prompt = "a photograph of an astronaut riding a horse";
  p.steps = 2;
  p.seed = 3;
  p.width = p.height = 64;
  LoadOptions lo;
  lo.config_dir = xl + "/sdxl-tiny";  // sd.cpp files carry no config
  auto base = Engine::load(xl + "/sdxl-tiny.safetensors", lo);
  ASSERT_TRUE(base) << base.error().to_string();
  auto want = (*base)->generate(p);
  ASSERT_TRUE(want) << want.error().to_string();
  for (const char* t : {"f32", "q8_0"}) {
    GgufConvertOptions o;
    o.type = t;
    const std::string out = work() + "/sdxl-tiny-" + t + ".gguf";
    convert_to_gguf(xl + "/sdxl-tiny.safetensors", out, o);
    EXPECT_TRUE(GgufFile::open(out)->has("conditioner.embedders.1.model.ln_final.weight")) << t;
    LoadOptions exact = lo;  // blocks dequantised exactly (native compute is QuantModel's subject)
    exact.quant_compute = "dequant";
    auto e = Engine::load(out, exact);
    ASSERT_TRUE(e) << t << ": " << e.error().to_string();
    EXPECT_EQ((*e)->info().family, "sdxl");
    auto r = (*e)->generate(p);
    ASSERT_TRUE(r) << r.error().to_string();
    const auto& a = r->images[0].pixels;
    const auto& b = want->images[0].pixels;
    ASSERT_EQ(a.size(), b.size());
    int worst = 0;
    for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(int(a[i]) - int(b[i])));
    std::printf("[gguf] sdxl %s: pixel diff vs the safetensors file max %d\n", t, worst);
    if (std::string(t) == "f32") {
      EXPECT_EQ(worst, 0);
      continue;
    }
    EXPECT_GT(worst, 0);  // it was quantised
    // the same dequantised values written as safetensors give the very same image
    auto g = GgufFile::open(out);
    std::vector<Tensor> keep;
    std::vector<TensorToWrite> tw;
    for (const auto& [name, info] : g->tensors()) {
      keep.push_back(g->load_f32(name));
      tw.push_back({name, DType::kF32, info.shape, keep.back().data()});
    }
    const std::string deq = work() + "/sdxl-tiny-q8_0-dequantised.safetensors";
    write_safetensors(deq, tw);
    auto d = Engine::load(deq, lo);
    ASSERT_TRUE(d) << d.error().to_string();
    auto rd = (*d)->generate(p);
    ASSERT_TRUE(rd) << rd.error().to_string();
    EXPECT_EQ(rd->images[0].pixels, a);
  }
}

}  // namespace
}  // namespace vg
