#include "io/image_decode.h"

#include <jpeglib.h>
#include <png.h>
#include <webp/decode.h>

#include <csetjmp>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "io/atomic_file.h"

namespace vg {

namespace {

void check_size(int w, int h, const std::string& name) {
  if (w <= 0 || h <= 0 || w > kMaxInputImageSide || h > kMaxInputImageSide ||
      int64_t{w} * h > kMaxInputImagePixels)
    fail(ErrorCode::kInvalidArgument, "'" + name + "' is " + std::to_string(w) + "x" + std::to_string(h) +
                                          "; images up to " + std::to_string(kMaxInputImageSide) +
                                          " pixels a side and 64 megapixels are accepted; scale it down first");
}

void png_error_throw(png_structp, png_const_charp msg) { throw VgException(ErrorCode::kCorruptFile, msg); }
void png_warn_ignore(png_structp, png_const_charp) {}

struct ReadState {
  const std::string* bytes;
  size_t pos;
};
void png_read_cb(png_structp png, png_bytep out, png_size_t len) {
  auto* st = static_cast<ReadState*>(png_get_io_ptr(png));
  if (st->pos + len > st->bytes->size()) png_error(png, "unexpected end of PNG data (truncated file?)");
  std::memcpy(out, st->bytes->data() + st->pos, len);
  st->pos += len;
}

Image decode_png_rgba(const std::string& bytes, const std::string& name) {
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, nullptr, png_error_throw, png_warn_ignore);
  png_infop info = png_create_info_struct(png);
  Image img;
  img.channels = 4;
  ReadState st{&bytes, 0};
  try {
    png_set_read_fn(png, &st, png_read_cb);
    png_read_info(png, info);
    check_size(static_cast<int>(png_get_image_width(png, info)), static_cast<int>(png_get_image_height(png, info)), name);
    png_set_expand(png);
    png_set_strip_16(png);
    png_set_gray_to_rgb(png);
    png_set_add_alpha(png, 0xff, PNG_FILLER_AFTER);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    img.width = static_cast<int>(png_get_image_width(png, info));
    img.height = static_cast<int>(png_get_image_height(png, info));
    if (png_get_rowbytes(png, info) != static_cast<size_t>(img.width) * 4)
      fail(ErrorCode::kCorruptFile, "unsupported PNG layout");
    img.pixels.resize(static_cast<size_t>(img.width) * img.height * 4);
    std::vector<png_bytep> rows(img.height);
    for (int y = 0; y < img.height; ++y) rows[y] = img.pixels.data() + static_cast<size_t>(y) * img.width * 4;
    png_read_image(png, rows.data());
  } catch (const VgException& e) {
    png_destroy_read_struct(&png, &info, nullptr);
    if (e.code() != ErrorCode::kCorruptFile) throw;
    fail(ErrorCode::kCorruptFile, "cannot decode '" + name + "': " + e.what() + "; re-export the image");
  }
  png_destroy_read_struct(&png, &info, nullptr);
  return img;
}

struct JpegErr {
  jpeg_error_mgr mgr;
  jmp_buf jump;
  char msg[JMSG_LENGTH_MAX];
};
void jpeg_error_exit(j_common_ptr c) {
  auto* e = reinterpret_cast<JpegErr*>(c->err);
  (*c->err->format_message)(c, e->msg);
  longjmp(e->jump, 1);
}
// Warnings (e.g. premature end of data) are counted, not printed.
void jpeg_quiet(j_common_ptr c, int level) {
  if (level < 0) c->err->num_warnings++;
}

Image decode_jpeg_rgba(const std::string& bytes, const std::string& name) {
  jpeg_decompress_struct cinfo;
  JpegErr err;
  cinfo.err = jpeg_std_error(&err.mgr);
  err.mgr.error_exit = jpeg_error_exit;
  err.mgr.emit_message = jpeg_quiet;
  std::vector<uint8_t> rgb;
  int w = 0, h = 0;
  if (setjmp(err.jump)) {
    jpeg_destroy_decompress(&cinfo);
    fail(ErrorCode::kCorruptFile, "cannot decode '" + name + "': " + err.msg + " (truncated or damaged JPEG?)");
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<unsigned long>(bytes.size()));
  jpeg_read_header(&cinfo, TRUE);
  cinfo.out_color_space = JCS_RGB;
  jpeg_start_decompress(&cinfo);
  w = static_cast<int>(cinfo.output_width);
  h = static_cast<int>(cinfo.output_height);
  if (w > kMaxInputImageSide || h > kMaxInputImageSide || int64_t{w} * h > kMaxInputImagePixels) {
    jpeg_destroy_decompress(&cinfo);
    check_size(w, h, name);
  }
  rgb.resize(static_cast<size_t>(w) * h * 3);
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW row = rgb.data() + static_cast<size_t>(cinfo.output_scanline) * w * 3;
    jpeg_read_scanlines(&cinfo, &row, 1);
  }
  // libjpeg pads a truncated file with grey and only warns; treat that as damage.
  const bool truncated = err.mgr.num_warnings > 0;
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  if (truncated) fail(ErrorCode::kCorruptFile, "'" + name + "' is a truncated or damaged JPEG; re-export the image");
  Image img;
  img.width = w;
  img.height = h;
  img.channels = 4;
  img.pixels.resize(static_cast<size_t>(w) * h * 4);
  for (size_t i = 0; i < static_cast<size_t>(w) * h; ++i) {
    std::memcpy(&img.pixels[i * 4], &rgb[i * 3], 3);
    img.pixels[i * 4 + 3] = 255;
  }
  return img;
}

Image decode_webp_rgba(const std::string& bytes, const std::string& name) {
  int w = 0, h = 0;
  const auto* data = reinterpret_cast<const uint8_t*>(bytes.data());
  if (!WebPGetInfo(data, bytes.size(), &w, &h)) fail(ErrorCode::kCorruptFile, "cannot decode '" + name + "': damaged WebP header");
  check_size(w, h, name);
  Image img;
  img.width = w;
  img.height = h;
  img.channels = 4;
  img.pixels.resize(static_cast<size_t>(w) * h * 4);
  if (!WebPDecodeRGBAInto(data, bytes.size(), img.pixels.data(), img.pixels.size(), w * 4))
    fail(ErrorCode::kCorruptFile, "cannot decode '" + name + "': truncated or damaged WebP data");
  return img;
}

}  // namespace

Image decode_image(const std::string& b, const std::string& name) {
  if (b.size() >= 8 && png_sig_cmp(reinterpret_cast<png_const_bytep>(b.data()), 0, 8) == 0) return decode_png_rgba(b, name);
  if (b.size() >= 3 && static_cast<uint8_t>(b[0]) == 0xFF && static_cast<uint8_t>(b[1]) == 0xD8) return decode_jpeg_rgba(b, name);
  if (b.size() >= 12 && b.compare(0, 4, "RIFF") == 0 && b.compare(8, 4, "WEBP") == 0) return decode_webp_rgba(b, name);
  if (b.empty()) fail(ErrorCode::kCorruptFile, "'" + name + "' is empty");
  fail(ErrorCode::kUnsupportedFormat, "'" + name + "' is not a PNG, JPEG or WebP image; convert it to PNG");
}

Image read_image_file(const std::string& path) {
  if (!path_exists(path)) fail(ErrorCode::kFileNotFound, "image '" + path + "' does not exist");
  if (is_directory(path)) fail(ErrorCode::kInvalidArgument, "'" + path + "' is a folder, not an image");
  return decode_image(read_file(path), path);
}

}  // namespace vg
