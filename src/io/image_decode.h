// Decoding user images (init images and masks): PNG (any bit depth, gray,
// palette, interlaced, alpha), JPEG and WebP, always to RGBA8.
#pragma once
#include <string>

#include "visiongen/visiongen.h"

namespace vg {

constexpr int kMaxInputImageSide = 16384;

// channels == 4 in the result. Throws corrupt_file for damaged/truncated
// data, unsupported_format for other formats.
Image decode_image(const std::string& bytes, const std::string& name_for_errors);
Image read_image_file(const std::string& path);

}  // namespace vg
