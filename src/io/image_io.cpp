#include "io/image_io.h"

#include <jpeglib.h>
#include <png.h>
#include <webp/encode.h>

#include <csetjmp>
#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "io/atomic_file.h"
#include "io/image_decode.h"

namespace vg {

namespace {

void check_image(const Image& img) {
  if (img.width <= 0 || img.height <= 0 || img.channels != 3 ||
      img.pixels.size() != static_cast<size_t>(img.width) * img.height * 3)
    fail(ErrorCode::kInternal, "image buffer does not match its size");
}

void png_write_to_string(png_structp png, png_bytep data, png_size_t len) {
  static_cast<std::string*>(png_get_io_ptr(png))->append(reinterpret_cast<char*>(data), len);
}
void png_flush_noop(png_structp) {}
void png_error_throw(png_structp, png_const_charp msg) { throw VgException(ErrorCode::kCorruptFile, msg); }
void png_warn_ignore(png_structp, png_const_charp) {}

struct PngReadState {
  const std::string* bytes;
  size_t pos;
};
void png_read_from_string(png_structp png, png_bytep out, png_size_t len) {
  auto* st = static_cast<PngReadState*>(png_get_io_ptr(png));
  if (st->pos + len > st->bytes->size()) png_error(png, "unexpected end of PNG data (truncated file?)");
  std::memcpy(out, st->bytes->data() + st->pos, len);
  st->pos += len;
}


}  // namespace

std::string encode_png(const Image& img, const std::string& parameters) {
  check_image(img);
  std::string out;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, png_error_throw, png_warn_ignore);
  png_infop info = png_create_info_struct(png);
  try {
    png_set_write_fn(png, &out, png_write_to_string, png_flush_noop);
    png_set_IHDR(png, info, img.width, img.height, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_text text{};
    std::string key = "parameters";
    if (!parameters.empty()) {
      // A1111 writes tEXt when Latin-1 suffices and iTXt (UTF-8) otherwise.
      bool ascii = true;
      for (unsigned char c : parameters) ascii = ascii && c < 0x80;
      text.compression = ascii ? PNG_TEXT_COMPRESSION_NONE : PNG_ITXT_COMPRESSION_NONE;
      text.key = key.data();
      text.text = const_cast<char*>(parameters.c_str());
      text.text_length = parameters.size();
      png_set_text(png, info, &text, 1);
    }
    png_write_info(png, info);
    for (int y = 0; y < img.height; ++y)
      png_write_row(png, const_cast<png_bytep>(img.pixels.data() + static_cast<size_t>(y) * img.width * 3));
    png_write_end(png, nullptr);
  } catch (...) {
    png_destroy_write_struct(&png, &info);
    throw;
  }
  png_destroy_write_struct(&png, &info);
  return out;
}

Image decode_png(const std::string& bytes, const std::string& name) {
  if (bytes.size() < 8 || png_sig_cmp(reinterpret_cast<png_const_bytep>(bytes.data()), 0, 8))
    fail(ErrorCode::kCorruptFile, "'" + name + "' is not a PNG file");
  const Image rgba = decode_image(bytes, name);  // alpha dropped below
  Image img;
  img.width = rgba.width;
  img.height = rgba.height;
  img.pixels.reserve(static_cast<size_t>(img.width) * img.height * 3);
  for (size_t i = 0; i < rgba.pixels.size(); i += 4) img.pixels.insert(img.pixels.end(), {rgba.pixels[i], rgba.pixels[i + 1], rgba.pixels[i + 2]});
  return img;
}

std::string read_png_parameters(const std::string& bytes) {
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, nullptr, png_error_throw, png_warn_ignore);
  png_infop info = png_create_info_struct(png);
  PngReadState st{&bytes, 0};
  std::string result;
  try {
    png_set_read_fn(png, &st, png_read_from_string);
    png_read_info(png, info);
    png_textp texts = nullptr;
    int n = png_get_text(png, info, &texts, nullptr);
    for (int i = 0; i < n; ++i)
      if (std::strcmp(texts[i].key, "parameters") == 0) result.assign(texts[i].text, texts[i].text_length ? texts[i].text_length : std::strlen(texts[i].text));
  } catch (const VgException&) {
  }
  png_destroy_read_struct(&png, &info, nullptr);
  return result;
}

namespace {
struct JpegErr {
  jpeg_error_mgr mgr;
  jmp_buf jump;
};
void jpeg_error_exit(j_common_ptr cinfo) { longjmp(reinterpret_cast<JpegErr*>(cinfo->err)->jump, 1); }
}  // namespace

std::string encode_jpeg(const Image& img, const std::string& parameters, int quality) {
  check_image(img);
  jpeg_compress_struct cinfo;
  JpegErr err;
  cinfo.err = jpeg_std_error(&err.mgr);
  err.mgr.error_exit = jpeg_error_exit;
  unsigned char* buf = nullptr;
  unsigned long size = 0;
  if (setjmp(err.jump)) {
    jpeg_destroy_compress(&cinfo);
    free(buf);
    fail(ErrorCode::kInternal, "JPEG encoding failed");
  }
  jpeg_create_compress(&cinfo);
  jpeg_mem_dest(&cinfo, &buf, &size);
  cinfo.image_width = img.width;
  cinfo.image_height = img.height;
  cinfo.input_components = 3;
  cinfo.in_color_space = JCS_RGB;
  jpeg_set_defaults(&cinfo);
  jpeg_set_quality(&cinfo, quality, TRUE);
  jpeg_start_compress(&cinfo, TRUE);
  if (!parameters.empty())  // COM marker; limited to 65533 bytes
    jpeg_write_marker(&cinfo, JPEG_COM, reinterpret_cast<const JOCTET*>(parameters.data()),
                      static_cast<unsigned>(std::min<size_t>(parameters.size(), 65533)));
  while (cinfo.next_scanline < cinfo.image_height) {
    JSAMPROW row = const_cast<JSAMPROW>(img.pixels.data() + static_cast<size_t>(cinfo.next_scanline) * img.width * 3);
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  jpeg_destroy_compress(&cinfo);
  std::string out(reinterpret_cast<char*>(buf), size);
  free(buf);
  return out;
}

std::string encode_webp(const Image& img, int quality) {
  check_image(img);
  uint8_t* out = nullptr;
  size_t n = WebPEncodeRGB(img.pixels.data(), img.width, img.height, img.width * 3,
                           static_cast<float>(quality), &out);
  if (n == 0) fail(ErrorCode::kInternal, "WebP encoding failed");
  std::string s(reinterpret_cast<char*>(out), n);
  WebPFree(out);
  return s;
}

void write_image_file(const Image& img, const std::string& path, const std::string& parameters) {
  std::string ext = std::filesystem::path(path).extension().string();
  for (auto& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  std::string bytes;
  if (ext == ".png") bytes = encode_png(img, parameters);
  else if (ext == ".jpg" || ext == ".jpeg") bytes = encode_jpeg(img, parameters);
  else if (ext == ".webp") bytes = encode_webp(img);
  else
    fail(ErrorCode::kInvalidArgument, "output '" + path + "' must end in .png, .jpg, .jpeg or .webp");
  write_file_atomic(path, bytes);
}

}  // namespace vg
