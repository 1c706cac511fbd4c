// quantize_row against ggml's reference quantisers: the synthetic fixture holds
// ggml's bytes of every type for known float32 sources (<name>.source).
#include <cmath>
#include <cstring>
#include <set>
#include <vector>

#include "io/gguf.h"
#include "quant/ggml_types.h"
#include "quant/quantize.h"
#include "test_util.h"

namespace vg {
namespace {

std::string synth() { return test::fixtures() + "/gguf/synthetic"; }

// Relative RMS error of rows [0, rows) of `got` against `src` (rows of n).
double rel_rms(const float* got, const float* src, int64_t rows, int64_t n) {
  double se = 0, ss = 0;
  for (int64_t i = 0; i < rows * n; ++i) {
    se += (static_cast<double>(got[i]) - src[i]) * (static_cast<double>(got[i]) - src[i]);
    ss += static_cast<double>(src[i]) * src[i];
  }
  return std::sqrt(se / ss);
}

struct Quantised {
  std::vector<uint8_t> bytes;
  std::vector<float> values;  // dequantised
};

Quantised quantise(int type, const Tensor& src) {
  const int64_t n = src.shape().back(), rows = src.numel() / n;
  const size_t rb = ggml_row_bytes(type, n);
  Quantised q{std::vector<uint8_t>(rb * rows), std::vector<float>(src.numel())};
  for (int64_t r = 0; r < rows; ++r) {
    quantize_row(type, src.data() + r * n, q.bytes.data() + r * rb, n);
    dequantize_row(type, q.bytes.data() + r * rb, q.values.data() + r * n, n);
  }
  return q;
}

TEST(Quantize, ReproducesGgmlReferenceBytesForEveryType) {
  auto file = GgufFile::open(synth() + "/all_types.gguf");
  auto ref = SafetensorsFile::open(synth() + "/all_types_ref.safetensors");
  // Every type reproduces ggml's reference quantiser byte for byte (the
  // K types too: same scale/min search, no FMA contraction).
  std::set<int> seen;
  for (const auto& [name, info] : file->tensors()) {
    // w_<type> come from source_8x512, the others from <name>.source (the file's metadata says so)
    const std::string src_name = ref->has(name + ".source") ? name + ".source" : "source_8x512";
    if (!can_quantize(info.ggml_type) || !ref->has(src_name)) continue;
    const Tensor src = ref->load_f32(src_name);
    const Quantised q = quantise(info.ggml_type, src);
    ASSERT_EQ(q.bytes.size(), info.nbytes) << name;
    seen.insert(info.ggml_type);
    EXPECT_EQ(std::memcmp(q.bytes.data(), info.data, info.nbytes), 0)
        << name << " (" << ggml_type_name(info.ggml_type) << ") bytes differ from ggml's";
    // and the round trip error equals ggml's (rows 0-4: normal magnitudes)
    const int64_t n = src.shape().back(), rows = std::min<int64_t>(5, src.numel() / n);
    EXPECT_EQ(rel_rms(q.values.data(), src.data(), rows, n),
              rel_rms(ref->load_f32(name).data(), src.data(), rows, n)) << name;
  }
  for (int t : {kGgmlQ8_0, kGgmlQ4_0, kGgmlQ4_1, kGgmlQ5_0, kGgmlQ5_1, kGgmlQ2_K, kGgmlQ3_K, kGgmlQ4_K,
                kGgmlQ5_K, kGgmlQ6_K, kGgmlF16, kGgmlBF16})
    EXPECT_TRUE(seen.count(t)) << ggml_type_name(t);
}

TEST(Quantize, HalfConversionRoundsToNearestEvenWithSubnormals) {
  const float cases[] = {0.f, -0.f, 1.f, 65504.f, 65520.f, 1e-8f, 2.98e-8f, 6.1e-5f, 3e-6f, 1.0009765625f,
                         1.00048828125f, 1.000732421875f, -2.5e-7f, 1e30f};
  for (float f : cases) {
    const uint16_t h = f32_to_f16(f);
    uint8_t b[2];
    std::memcpy(b, &h, 2);
    float back;
    dequantize_row(kGgmlF16, b, &back, 1);
    // the nearest binary16 neighbours of `back` are no closer to f
    if ((h & 0x7fff) >= 0x7c00) continue;  // overflowed to inf: checked below
    for (int d : {-1, 1}) {
      const uint16_t nb = static_cast<uint16_t>(h + d);
      if ((nb & 0x7fff) >= 0x7c00 || ((h & 0x7fff) == 0 && d < 0)) continue;
      std::memcpy(b, &nb, 2);
      float other;
      dequantize_row(kGgmlF16, b, &other, 1);
      EXPECT_LE(std::fabs(static_cast<double>(back) - f), std::fabs(static_cast<double>(other) - f)) << f;
    }
  }
  EXPECT_EQ(f32_to_f16(65520.f), 0x7c00);  // rounds to infinity as IEEE does
  EXPECT_EQ(f32_to_f16(1.00048828125f), 0x3c00);  // tie to even (down)
  EXPECT_EQ(f32_to_f16(1.00146484375f), 0x3c02);  // tie to even (up)
  EXPECT_EQ(f32_to_bf16(1.00390625f), 0x3f80);    // tie to even
}

TEST(Quantize, RefusesPartialBlocksAndUnknownTypes) {
  std::vector<float> x(40, 1.f);
  std::vector<uint8_t> out(1024);
  EXPECT_THROW(quantize_row(kGgmlQ8_0, x.data(), out.data(), 40), VgException);
  EXPECT_THROW(quantize_row(kGgmlIQ4_XS, x.data(), out.data(), 256), VgException);
  EXPECT_THROW(quantize_row(99, x.data(), out.data(), 32), VgException);
}

}  // namespace
}  // namespace vg
