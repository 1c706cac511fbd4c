// Video output: MP4 (H.264), WebM (VP9), animated WebP and GIF, or one PNG per
// frame, each with the generation parameters as a comment. Files are encoded in
// memory and then written atomically (io/atomic_file.h): a failure leaves
// nothing at the target and no temp file.
#pragma once
#include <string>
#include <vector>

#include "core/tensor.h"
#include "visiongen/visiongen.h"

namespace vg {

// vg::Video (visiongen.h): RGB8 frames of one size at `fps`.

// The format follows the extension (case-insensitive):
//   .mp4  H.264 (libx264, crf 18, preset medium), yuv420p (BT.601, limited range, tagged);
//         width and height must be even (4:2:0), else invalid_argument. Comment: the
//         container's "comment" tag (the mp4 ©cmt atom).
//   .webm VP9 (libvpx-vp9, constant quality crf 24), yuv420p; odd sizes work. Comment: the
//         Matroska COMMENT tag.
//   .webp animated, lossless (the frames exactly; larger than mp4/webm), loops forever.
//         Comment: an XMP chunk holding it as dc:description (XML-escaped).
//   .gif  one global 256-colour median-cut palette for all frames, libavcodec's gif encoder,
//         loops forever; frame delays are in 1/100 s. Comment: a GIF comment extension.
// Errors: unknown extension -> invalid_argument; an encoder missing from the FFmpeg build ->
// capability_not_supported; write failures -> io_error ("free disk space" on ENOSPC).
void write_video(const std::string& path, const Video& v, const std::string& comment);

// DIR/frame_0000.png, frame_0001.png ...: creates DIR; each PNG holds the frame as it is
// in `v` (no rounding of its own) with `comment` as its "parameters" text, written
// atomically.
void write_video_frames(const std::string& dir, const Video& v, const std::string& comment);

// The file `write_video` would write for extension `ext` ("mp4", "webm", "webp",
// "gif"), as bytes (the server keeps them as artifacts).
std::string encode_video(const Video& v, const std::string& ext, const std::string& comment);
// "video/mp4", "video/webm", "image/webp", "image/gif" for those extensions.
std::string video_mime(const std::string& ext);

// .mp4 .webm .webp .gif (case-insensitive). .webp is an image format too: callers
// choose by frame count.
bool is_video_path(const std::string& path);

// [F,H,W,3] floats in [0,1] -> RGB8 frames by truncation, uint8(x * 255) as diffusers'
// export_to_video does (the PNG writers round instead).
Video video_from_frames01(const Tensor& frames, double fps);

}  // namespace vg
