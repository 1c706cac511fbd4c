// LoRA files: safetensors plus the key grammar of kohya/LyCORIS/PEFT/diffusers
// names, the factor shapes, and each small module's full update.
#include <algorithm>

#include "core/error.h"
#include "fuzz/fuzz_input.h"
#include "lora/lora_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    auto f = vg::load_lora_file(vg::fuzz::as_file(data, size));
    for (const vg::LoraModule& m : f->modules) {
      std::string why;
      const vg::Shape s = vg::lora_delta_shape(m, &why);
      if (s.empty() || vg::shape_numel(s) > (1 << 16)) continue;
      vg::Tensor w(s);
      std::fill(w.data(), w.data() + w.numel(), 0.0f);
      vg::lora_add_delta(m, 0.5f, w);
    }
  } catch (const vg::VgException&) {
  }
  return 0;
}
