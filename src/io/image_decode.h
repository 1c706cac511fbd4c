// Decoding user images (init images and masks): PNG (any bit depth, gray,
// palette, interlaced, alpha), JPEG and WebP, always to RGBA8.
#pragma once
#include <string>

#include "visiongen/visiongen.h"

namespace vg {

constexpr int kMaxInputImageSide = 16384;
// 64 megapixels (8192x8192): a few MB of PNG can declare 16384x16384, and
// decoding it (with a mask beside it) would take gigabytes.
constexpr int64_t kMaxInputImagePixels = int64_t{8192} * 8192;

// channels == 4 in the result. Throws corrupt_file for damaged/truncated
// data, unsupported_format for other formats.
Image decode_image(const std::string& bytes, const std::string& name_for_errors);
Image read_image_file(const std::string& path);

}  // namespace vg
