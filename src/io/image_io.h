// PNG / JPEG / WebP encoding with generation metadata, written atomically.
#pragma once
#include <string>

#include "visiongen/visiongen.h"

namespace vg {

std::string encode_png(const Image& img, const std::string& parameters);
std::string encode_jpeg(const Image& img, const std::string& parameters, int quality = 92);
std::string encode_webp(const Image& img, int quality = 92);
// Reads the "parameters" tEXt/iTXt chunk of a PNG ("" if none).
std::string read_png_parameters(const std::string& png_bytes);
// Decodes a PNG to RGB8 (for tests and later image inputs).
Image decode_png(const std::string& bytes, const std::string& name_for_errors);

void write_image_file(const Image& img, const std::string& path, const std::string& parameters);

}  // namespace vg
