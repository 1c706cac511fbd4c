// Image decoding (PNG, JPEG, WebP: what init images and masks arrive as).
#include "core/error.h"
#include "fuzz/fuzz_input.h"
#include "io/image_decode.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    vg::Image im = vg::decode_image(vg::fuzz::as_text(data, size), "fuzz input");
    if (im.pixels.size() != static_cast<size_t>(im.width) * im.height * im.channels) std::abort();
  } catch (const vg::VgException&) {
  }
  return 0;
}
