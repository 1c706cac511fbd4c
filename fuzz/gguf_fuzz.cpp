// GGUF: header, KV pairs, tensor infos, and the dequantisation of small tensors.
#include "core/error.h"
#include "fuzz/fuzz_input.h"
#include "io/gguf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    auto f = vg::GgufFile::open(vg::fuzz::as_file(data, size));
    for (const auto& [name, info] : f->tensors())
      if (info.nbytes <= (1u << 16)) (void)f->load_f32(name);
  } catch (const vg::VgException&) {
  }
  return 0;
}
