// Quantised compute in a model: stable-diffusion.cpp's q4_0 UNet of sd1-tiny
// in native mode (linears from the blocks) against the same file dequantised
// to float32; LoRAs reach quantised linears at run time.
#include <cstring>

#include "backend/cpu/ops.h"
#include "io/weights.h"
#include "lora/lora_manager.h"
#include "pipelines/sd_model.h"
#include "test_util.h"

namespace vg {
namespace {

std::string xl() { return test::fixtures() + "/sdxl-tiny"; }

struct Model {
  std::unique_ptr<SdModel> m;
  std::unique_ptr<LoraManager> lm;
};

Model load(bool native) {
  ScopedDequantizeBlocks dequant(!native);
  Model l;
  l.m = load_sd_model(test::tiny_model());
  load_unet_file(*l.m, test::fixtures() + "/gguf/models/sd1-tiny-unet-q4_0.gguf", false);
  l.lm = std::make_unique<LoraManager>(
      l.m->info.family, std::vector<LoraComponent>{{"unet", l.m->unet_layers, l.m->unet_sgm_name},
                                                   {"text_encoder", l.m->text_encoder_layers, nullptr}});
  l.lm->set_dirs({xl() + "/models/lora"});
  return l;
}

Tensor unet_out(SdModel& m) {
  static auto st = SafetensorsFile::open(xl() + "/lora/stages.safetensors");
  const Tensor e = m.text_encoder->encode({m.tokenizer->encode_padded("a photograph of an astronaut riding a horse")}, 1);
  return m.unet->forward(nchw_to_nhwc(st->load_f32("unet_in.sample_sd1")), {500.0f}, e).clone();
}

double rel_l2(const Tensor& a, const Tensor& b) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    const double d = static_cast<double>(a.data()[i]) - b.data()[i];
    num += d * d, den += static_cast<double>(b.data()[i]) * b.data()[i];
  }
  return std::sqrt(num / den);
}

Tensor sub(const Tensor& a, const Tensor& b) {
  Tensor d = a.clone();
  for (int64_t i = 0; i < d.numel(); ++i) d.data()[i] -= b.data()[i];
  return d;
}

// Native mode makes no float32 copy of a quantised linear weight (only the
// few 1-D norm weights sd.cpp quantised are dequantised: they are tiny). And
// kohya LoCon and PEFT LoRAs on the quantised UNet (merge mode requested:
// quantised linears still apply them at run time) give what they give on the
// dequantised UNet, within activation quantisation's noise.
TEST(QuantModel, NoFloatCopiesAndLoraMatchesDequantised) {
  const uint64_t b0 = WeightStore::dequantized_bytes();
  Model q = load(true);
  const Tensor q0 = unet_out(*q.m);
  const uint64_t b1 = WeightStore::dequantized_bytes();
  Model f = load(false);
  const Tensor f0 = unet_out(*f.m);
  const uint64_t native = b1 - b0, dequant = WeightStore::dequantized_bytes() - b1;
  std::printf("  float32 made from blocks: native %.1f KB, dequant %.1f KB\n", native / 1024.0, dequant / 1024.0);
  EXPECT_GT(dequant, 1u << 20);
  EXPECT_LT(native, dequant / 50);

  const double base = rel_l2(q0, f0);
  EXPECT_LT(base, 0.05);
  EXPECT_GT(base, 1e-5);  // native really computed from the blocks
  for (const char* name : {"sd1_kohya_locon", "sd1_peft"}) {
    SCOPED_TRACE(name);
    q.lm->set({{name, 1.0f}});
    f.lm->set({{name, 1.0f}});
    const Tensor q1 = unet_out(*q.m), f1 = unet_out(*f.m);
    const double with = rel_l2(q1, f1), effect = rel_l2(f1, f0), effect_err = rel_l2(sub(q1, q0), sub(f1, f0));
    std::printf("  %s: native vs dequant rel L2 %.2e (no LoRA %.2e); LoRA effect %.2e, its error %.2e\n", name, with, base,
                effect, effect_err);
    EXPECT_LT(with, 0.05);
    EXPECT_GT(effect, 5 * with);  // the LoRA did something much larger than the noise
    EXPECT_LT(effect_err, 0.1);   // and the same thing on both
    q.lm->set({});
    f.lm->set({});
  }
  EXPECT_EQ(0, std::memcmp(unet_out(*q.m).data(), q0.data(), q0.numel() * sizeof(float)));  // removed exactly
}

}  // namespace
}  // namespace vg
