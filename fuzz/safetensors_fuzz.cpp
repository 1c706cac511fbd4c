// safetensors: header, tensor table and every dtype conversion of small tensors.
#include "core/error.h"
#include "fuzz/fuzz_input.h"
#include "io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    auto f = vg::SafetensorsFile::open(vg::fuzz::as_file(data, size));
    for (const auto& [name, info] : f->tensors())
      if (info.nbytes <= (1u << 16)) (void)f->load_f32(name);
    (void)f->metadata();
  } catch (const vg::VgException&) {
  }
  return 0;
}
