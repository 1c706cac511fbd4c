// Internal: the per-format video encoders behind write_video (io/video_io.h).
// Each returns the whole file's bytes; write_video writes them atomically.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "io/video_io.h"

namespace vg {

enum class VideoFormat { kMp4, kWebm, kWebp, kGif };

// libavformat/libavcodec: .mp4 (libx264), .webm (libvpx-vp9), .gif (gif encoder,
// frames mapped to gif_palette()).
std::string encode_video_libav(const Video& v, VideoFormat format, const std::string& comment);
// libwebpmux's animation encoder with the comment in an XMP chunk.
std::string encode_video_webp(const Video& v, const std::string& comment);

// One palette for the whole video: median cut over the colours of every frame;
// 0xAARRGGBB entries (opaque), exactly 256 (unused ones black).
std::vector<uint32_t> gif_palette(const Video& v);
// Maps frames to palette indices (nearest colour).
class PaletteMapper {
 public:
  explicit PaletteMapper(const std::vector<uint32_t>& palette);
  void map(const Image& frame, uint8_t* out, int out_stride);

 private:
  std::vector<uint32_t> palette_;
  std::vector<int16_t> cache_;  // 6 bits per channel -> index, -1 unknown
};
// Inserts a GIF comment extension holding `comment` after the header (and
// global colour table) of a GIF89a file.
std::string gif_insert_comment(const std::string& gif, const std::string& comment);

}  // namespace vg
