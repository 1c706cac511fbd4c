#include "io/video_io.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <system_error>

#include "core/error.h"
#include "io/atomic_file.h"
#include "io/image_io.h"
#include "io/video_encoders.h"

namespace vg {

namespace {

std::string lower_extension(const std::string& path) {
  std::string ext = std::filesystem::path(path).extension().string();
  for (auto& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return ext;
}

void check_video(const Video& v) {
  if (v.frames.empty()) fail(ErrorCode::kInvalidArgument, "the video has no frames; nothing to write");
  if (v.width <= 0 || v.height <= 0)
    fail(ErrorCode::kInvalidArgument,
         "the video size " + std::to_string(v.width) + "x" + std::to_string(v.height) + " is not positive");
  if (!std::isfinite(v.fps) || v.fps <= 0 || v.fps > 1000)
    fail(ErrorCode::kInvalidArgument, "fps must be in (0, 1000], got " + std::to_string(v.fps));
  const size_t bytes = static_cast<size_t>(v.width) * v.height * 3;
  for (size_t i = 0; i < v.frames.size(); ++i) {
    const Image& f = v.frames[i];
    if (f.width != v.width || f.height != v.height || f.channels != 3 || f.pixels.size() != bytes)
      fail(ErrorCode::kInternal, "video frame " + std::to_string(i) + " is not a " + std::to_string(v.width) +
                                     "x" + std::to_string(v.height) + " RGB8 image");
  }
}

}  // namespace

bool is_video_path(const std::string& path) {
  const std::string ext = lower_extension(path);
  return ext == ".mp4" || ext == ".webm" || ext == ".webp" || ext == ".gif";
}

std::string encode_video(const Video& v, const std::string& ext_in, const std::string& comment) {
  std::string ext = ext_in;
  for (auto& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (!ext.empty() && ext[0] == '.') ext.erase(0, 1);
  VideoFormat format;
  if (ext == "mp4")
    format = VideoFormat::kMp4;
  else if (ext == "webm")
    format = VideoFormat::kWebm;
  else if (ext == "webp")
    format = VideoFormat::kWebp;
  else if (ext == "gif")
    format = VideoFormat::kGif;
  else
    fail(ErrorCode::kInvalidArgument, "video format '" + ext_in + "' is not one of mp4, webm, webp, gif");
  check_video(v);
  return format == VideoFormat::kWebp ? encode_video_webp(v, comment) : encode_video_libav(v, format, comment);
}

std::string video_mime(const std::string& ext_in) {
  std::string ext = ext_in;
  for (auto& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (!ext.empty() && ext[0] == '.') ext.erase(0, 1);
  if (ext == "webm") return "video/webm";
  if (ext == "webp") return "image/webp";
  if (ext == "gif") return "image/gif";
  return "video/mp4";
}

void write_video(const std::string& path, const Video& v, const std::string& comment) {
  if (!is_video_path(path))
    fail(ErrorCode::kInvalidArgument,
         "video output '" + path + "' must end in .mp4, .webm, .webp or .gif (or write a folder of PNG frames)");
  write_file_atomic(path, encode_video(v, lower_extension(path), comment));
}

void write_video_frames(const std::string& dir, const Video& v, const std::string& comment) {
  check_video(v);
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec || !is_directory(dir))
    fail(ErrorCode::kIoError, "cannot create the folder '" + dir +
                                  "': " + (ec ? ec.message() : std::string("a file of that name exists")) +
                                  "; check the path and permissions");
  for (size_t i = 0; i < v.frames.size(); ++i) {
    char name[32];
    std::snprintf(name, sizeof(name), "frame_%04zu.png", i);
    write_file_atomic((std::filesystem::path(dir) / name).string(), encode_png(v.frames[i], comment));
  }
}

Video video_from_frames01(const Tensor& frames, double fps) {
  if (frames.rank() != 4 || frames.dim(3) != 3 || frames.dim(0) < 1 || frames.dim(1) < 1 || frames.dim(2) < 1)
    fail(ErrorCode::kInvalidArgument, "video frames must be [F,H,W,3], got " + shape_str(frames.shape()));
  Video v;
  v.fps = fps;
  v.height = static_cast<int>(frames.dim(1));
  v.width = static_cast<int>(frames.dim(2));
  const size_t n = static_cast<size_t>(v.width) * v.height * 3;
  for (int64_t f = 0; f < frames.dim(0); ++f) {
    Image img;
    img.width = v.width;
    img.height = v.height;
    img.pixels.resize(n);
    const float* src = frames.data() + f * static_cast<int64_t>(n);
    for (size_t i = 0; i < n; ++i) {
      // numpy: (frame * 255).astype(uint8) in float32, truncating; clamped so a
      // stray value outside [0, 1] (or NaN) cannot wrap around
      const float x = src[i] * 255.0f;
      img.pixels[i] = static_cast<uint8_t>(x >= 255.0f ? 255.0f : (x > 0.0f ? x : 0.0f));
    }
    v.frames.push_back(std::move(img));
  }
  return v;
}

}  // namespace vg
