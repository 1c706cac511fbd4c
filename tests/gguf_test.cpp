// GGUF reader, dequantisation and tensor-store integration against
// ../shared/fixtures/gguf (files written by ggml, gguf-py and stable-diffusion.cpp).
#include <filesystem>
#include <fstream>
#include <set>

#include "core/hash.h"
#include "io/gguf.h"
#include "io/weights.h"
#include "quant/ggml_types.h"
#include "test_util.h"

namespace vg {
namespace {

namespace fs = std::filesystem;

std::string gdir() { return test::fixtures() + "/gguf"; }

ErrorCode open_error(const std::string& path) {
  try {
    GgufFile::open(path);
  } catch (const VgException& e) {
    return e.code();
  }
  return ErrorCode::kOk;
}

// Every tensor of `gguf` dequantises to exactly the float32 bytes stored
// under its name in `ref`, and has the reference's PyTorch shape.
std::set<int> expect_bit_exact(const std::string& gguf, const std::string& ref_path) {
  auto f = GgufFile::open(gguf);
  auto ref = SafetensorsFile::open(ref_path);
  std::set<int> types;
  EXPECT_FALSE(f->tensors().empty());
  for (const auto& [name, info] : f->tensors()) {
    EXPECT_TRUE(ref->has(name)) << name;
    if (!ref->has(name)) continue;
    const Tensor want = ref->load_f32(name);
    const Tensor got = f->load_f32(name);
    EXPECT_EQ(got.shape(), want.shape()) << name;
    EXPECT_EQ(got.numel(), want.numel()) << name;
    if (got.numel() != want.numel()) continue;
    EXPECT_EQ(std::memcmp(got.data(), want.data(), got.numel() * 4), 0)
        << gguf << " " << name << " (" << ggml_type_name(info.ggml_type) << ") max diff "
        << test::max_abs_diff(got.data(), want.data(), got.numel());
    types.insert(info.ggml_type);
  }
  return types;
}

TEST(Gguf, AllTypesDequantiseBitExactlyFromGgmlAndGgufPyFiles) {
  const std::string ref = gdir() + "/synthetic/all_types_ref.safetensors";
  const std::set<int> types = expect_bit_exact(gdir() + "/synthetic/all_types.gguf", ref);
  const std::set<int> want = {kGgmlF32, kGgmlF16, kGgmlBF16, kGgmlQ8_0, kGgmlQ4_0, kGgmlQ4_1, kGgmlQ5_0, kGgmlQ5_1,
                              kGgmlQ2_K, kGgmlQ3_K, kGgmlQ4_K, kGgmlQ5_K, kGgmlQ6_K, kGgmlIQ4_NL, kGgmlIQ4_XS};
  EXPECT_EQ(types, want);  // every supported block format was exercised
  EXPECT_EQ(expect_bit_exact(gdir() + "/synthetic/all_types_ggufpy.gguf", ref), want);
}

TEST(Gguf, UnalignedRowsStoredAsF16DequantiseBitExactly) {
  const std::set<int> types = expect_bit_exact(gdir() + "/synthetic/unaligned_f16.gguf",
                                               gdir() + "/synthetic/unaligned_f16_ref.safetensors");
  EXPECT_TRUE(types.count(kGgmlF16) && types.count(kGgmlQ8_0));
}

TEST(Gguf, HeaderAndLayoutOfBothWriters) {
  auto a = GgufFile::open(gdir() + "/synthetic/all_types.gguf");
  auto b = GgufFile::open(gdir() + "/synthetic/all_types_ggufpy.gguf");
  EXPECT_EQ(a->version(), 3u);
  EXPECT_EQ(a->alignment(), 32u);
  EXPECT_NE(a->data_offset(), b->data_offset());  // different headers, same tensor bytes
  for (const auto& [name, info] : a->tensors()) {
    const TensorInfo& o = b->info(name);
    EXPECT_EQ(info.ggml_type, o.ggml_type);
    ASSERT_EQ(info.nbytes, o.nbytes) << name;
    EXPECT_EQ(std::memcmp(info.data, o.data, info.nbytes), 0) << name;
    EXPECT_EQ(tensor_bytes(info, shape_numel(info.shape)), info.nbytes) << name;
  }
  EXPECT_EQ(a->info("w_q4_k").shape, (Shape{8, 512}));
  EXPECT_EQ(a->info("w_q4_k").dtype, DType::kQuant);
  EXPECT_EQ(a->info("w_f16").dtype, DType::kF16);
  EXPECT_EQ(a->info("w3d_q8_0").shape, (Shape{2, 3, 256}));
}

TEST(Gguf, KvValuesOfEveryTypeAreReadable) {
  auto f = GgufFile::open(gdir() + "/synthetic/all_types.gguf");
  EXPECT_EQ(f->kv().size(), 19u);
  EXPECT_EQ(f->get_string("general.architecture").value(), "synthetic");
  EXPECT_EQ(f->get_uint("general.quantization_version").value(), 2u);
  EXPECT_EQ(f->get_uint("test.u8").value(), 200u);
  EXPECT_EQ(f->get_int("test.i8").value(), -100);
  EXPECT_EQ(f->get_uint("test.u16").value(), 60000u);
  EXPECT_EQ(f->get_int("test.i16").value(), -30000);
  EXPECT_EQ(f->get_uint("test.u32").value(), 4000000000u);
  EXPECT_EQ(f->get_int("test.i32").value(), -2000000000);
  EXPECT_EQ(f->get_float("test.f32").value(), static_cast<double>(0.1f));
  EXPECT_EQ(f->get_uint("test.u64").value(), 18000000000000000000ull);
  EXPECT_EQ(f->get_int("test.i64").value(), -9000000000000000000ll);
  EXPECT_EQ(f->get_float("test.f64").value(), 0.1);
  EXPECT_TRUE(f->get_bool("test.bool").value());
  EXPECT_EQ(f->get_string("test.string_utf8").value(), "h\xc3\xa9llo \xe2\x9c\x93");
  EXPECT_EQ(f->get_int_array("test.arr_i32").value(), (std::vector<int64_t>{1, -2, 3, -4, 5}));
  EXPECT_EQ(f->get_float_array("test.arr_f32").value(), (std::vector<double>{0.5, -1.25, 3.0}));
  EXPECT_EQ(f->get_string_array("test.arr_str").value(), (std::vector<std::string>{"a", "", "xyz"}));
  EXPECT_TRUE(f->get_int_array("test.arr_empty_u8").value().empty());
  EXPECT_FALSE(f->get_int("no.such.key").has_value());
  EXPECT_EQ(f->metadata().at("test.i16"), "-30000");  // scalars also as text metadata
  // A value of another type is a clear error, never a silent conversion.
  EXPECT_THROW(f->get_string("test.u8"), VgException);
  EXPECT_THROW(f->get_int("test.u64"), VgException);  // does not fit int64
  EXPECT_THROW(f->get_uint("test.i8"), VgException);
  EXPECT_THROW(f->get_string_array("test.arr_i32"), VgException);
}

TEST(Gguf, ValidSmallLoadsAndEveryBadFileIsCorrupt) {
  auto v = GgufFile::open(gdir() + "/bad/valid_small.gguf");
  const Tensor a = v->load_f32("a.weight");
  ASSERT_EQ(a.shape(), (Shape{4, 8}));
  for (int i = 0; i < 32; ++i) EXPECT_EQ(a.data()[i], i / 8.0f - 2.0f);
  const Tensor b = v->load_f32("b.weight");
  ASSERT_EQ(b.shape(), (Shape{2, 32}));
  EXPECT_NEAR(b.data()[0], -1.0f, 1e-2);
  EXPECT_NEAR(b.data()[63], 1.0f, 1e-2);
  int n = 0;
  for (const auto& e : fs::directory_iterator(gdir() + "/bad")) {
    const std::string p = e.path().string();
    if (e.path().filename() == "valid_small.gguf" || e.path().extension() != ".gguf") continue;
    EXPECT_EQ(open_error(p), ErrorCode::kCorruptFile) << p;
    ++n;
  }
  EXPECT_EQ(n, 16);
  // Every truncation of the valid file fails cleanly too (never a crash).
  const std::string bytes = read_file(gdir() + "/bad/valid_small.gguf");
  const std::string tmp = testing::TempDir() + "/gguf_cut.gguf";
  const TensorInfo& last = v->info("b.weight");  // the bytes after it are only padding
  const size_t end = v->data_offset() + static_cast<size_t>(last.data + last.nbytes - v->info("a.weight").data);
  ASSERT_LE(end, bytes.size());
  for (size_t cut = 0; cut < end; cut += 7) {
    { std::ofstream(tmp, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(cut)); }
    EXPECT_EQ(open_error(tmp), ErrorCode::kCorruptFile) << cut;
  }
  fs::remove(tmp);
}

uint64_t fnv1a64(const float* p, size_t n) {
  uint64_t h = 0xcbf29ce484222325ull;
  const auto* b = reinterpret_cast<const unsigned char*>(p);
  for (size_t i = 0; i < n * 4; ++i) h = (h ^ b[i]) * 0x100000001b3ull;
  return h;
}

// Every tensor of the stable-diffusion.cpp files, read through a WeightStore
// (as the models read them), matches the digests of gguf-py's dequantisation.
TEST(Gguf, SdCppModelTensorsMatchDigests) {
  for (const char* stem : {"sd1-tiny-q8_0", "sd1-tiny-unet-q4_0", "sd1-tiny-unet-q5_1"}) {
    const std::string base = gdir() + "/models/" + stem;
    const auto j = nlohmann::json::parse(read_file(base + ".tensors.json"));
    auto f = GgufFile::open(base + ".gguf");
    EXPECT_EQ(f->kv().size(), j["header"]["n_kv"].get<size_t>());
    EXPECT_EQ(f->data_offset(), j["header"]["data_offset"].get<size_t>());
    ASSERT_EQ(f->tensors().size(), j["tensors"].size()) << stem;
    WeightStore ws;
    ws.add_file(f);
    int quantised = 0;
    for (const auto& t : j["tensors"]) {
      const std::string name = t["name"];
      const TensorInfo& info = f->info(name);
      EXPECT_EQ(info.shape, t["shape_torch"].get<Shape>()) << name;
      EXPECT_EQ(std::string(ggml_type_name(info.ggml_type)), t["type"].get<std::string>()) << name;
      EXPECT_EQ(info.nbytes, t["n_bytes"].get<size_t>()) << name;
      quantised += info.dtype == DType::kQuant;
      const Tensor x = ws.get(name);
      char hex[17];
      std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(fnv1a64(x.data(), x.numel())));
      EXPECT_EQ(hex, t["dequant"]["fnv1a64_f32le"].get<std::string>()) << stem << " " << name;
      if (info.dtype == DType::kQuant)  // the sha256 too, where dequantisation happens
        EXPECT_EQ(sha256_hex(std::string_view(reinterpret_cast<const char*>(x.data()), x.numel() * 4)),
                  t["dequant"]["sha256_f32le"].get<std::string>()) << name;
    }
    EXPECT_EQ(quantised, 121 + (std::string(stem) == "sd1-tiny-q8_0" ? 60 : 0)) << stem;
    // bf16 stores dequantise to float32 first and round once.
    const std::string q = "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight";
    if (f->has(q)) {
      const Tensor x = ws.get(q);
      const std::vector<uint16_t> h = ws.get_bf16(q, x.shape());
      for (int64_t i = 0; i < x.numel(); i += 97) EXPECT_NEAR(bf16_to_f32(h[i]), x.data()[i], std::fabs(x.data()[i]) / 128);
    }
  }
}

TEST(Gguf, DequantizeRowRefusesUndecodableTypesAndPartialBlocks) {
  std::vector<uint8_t> block(292, 0);
  std::vector<float> out(256);
  EXPECT_THROW(dequantize_row(15 /* Q8_K */, block.data(), out.data(), 256), VgException);
  EXPECT_THROW(dequantize_row(kGgmlQ8_0, block.data(), out.data(), 16), VgException);
  EXPECT_EQ(ggml_type_info(4), nullptr);
  EXPECT_EQ(ggml_type_info(kGgmlQ6_K)->block_bytes, 210u);
  EXPECT_EQ(ggml_row_bytes(kGgmlQ4_K, 512), 288u);
}

}  // namespace
}  // namespace vg
