// MP4 / WebM / GIF through libavformat + libavcodec, muxed into memory.
#include <cstring>
#include <memory>
#include <mutex>

#include "core/error.h"
#include "io/video_encoders.h"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/dict.h>
#include <libavutil/log.h>
#include <libavutil/opt.h>
#include <libswscale/swscale.h>
}

namespace vg {

namespace {

std::string av_error_text(int err) {
  char buf[AV_ERROR_MAX_STRING_SIZE] = {};
  av_strerror(err, buf, sizeof(buf));
  return buf;
}

[[noreturn]] void fail_av(const std::string& what, int err) {
  fail(ErrorCode::kInternal, what + " failed: " + av_error_text(err));
}

// A seekable in-memory output (the mp4 muxer seeks back to patch sizes).
struct MemoryOutput {
  std::string bytes;
  int64_t pos = 0;
};

// FFmpeg 7 (libavformat 61) made the written buffer const.
#if LIBAVFORMAT_VERSION_MAJOR >= 61
using WriteBuffer = const uint8_t*;
#else
using WriteBuffer = uint8_t*;
#endif
int memory_write(void* opaque, WriteBuffer data, int n) {
  auto* m = static_cast<MemoryOutput*>(opaque);
  if (m->pos + n > static_cast<int64_t>(m->bytes.size())) m->bytes.resize(m->pos + n);
  std::memcpy(m->bytes.data() + m->pos, data, n);
  m->pos += n;
  return n;
}

int64_t memory_seek(void* opaque, int64_t offset, int whence) {
  auto* m = static_cast<MemoryOutput*>(opaque);
  const int64_t size = static_cast<int64_t>(m->bytes.size());
  switch (whence & ~AVSEEK_FORCE) {
    case AVSEEK_SIZE:
      return size;
    case SEEK_SET:
      m->pos = offset;
      break;
    case SEEK_CUR:
      m->pos += offset;
      break;
    case SEEK_END:
      m->pos = size + offset;
      break;
    default:
      return AVERROR(EINVAL);
  }
  return m->pos < 0 ? AVERROR(EINVAL) : m->pos;
}

struct FormatDeleter {
  void operator()(AVFormatContext* f) const { avformat_free_context(f); }
};
struct IoDeleter {
  void operator()(AVIOContext* pb) const {
    av_freep(&pb->buffer);
    avio_context_free(&pb);
  }
};
struct CodecDeleter {
  void operator()(AVCodecContext* c) const { avcodec_free_context(&c); }
};
struct FrameDeleter {
  void operator()(AVFrame* f) const { av_frame_free(&f); }
};
struct PacketDeleter {
  void operator()(AVPacket* p) const { av_packet_free(&p); }
};
struct SwsDeleter {
  void operator()(SwsContext* s) const { sws_freeContext(s); }
};

struct Target {
  const char* muxer;
  const char* encoder;
  const char* ext;
  AVPixelFormat pix_fmt;
};

Target target_of(VideoFormat format) {
  switch (format) {
    case VideoFormat::kMp4:
      return {"mp4", "libx264", ".mp4", AV_PIX_FMT_YUV420P};
    case VideoFormat::kWebm:
      return {"webm", "libvpx-vp9", ".webm", AV_PIX_FMT_YUV420P};
    default:
      return {"gif", "gif", ".gif", AV_PIX_FMT_PAL8};
  }
}

void set_option(AVCodecContext* ctx, const char* key, const char* value) {
  const int err = av_opt_set(ctx->priv_data, key, value, 0);
  if (err < 0) fail_av(std::string("setting the encoder option ") + key + "=" + value, err);
}

// Sends `frame` (null: flush) and muxes every packet the encoder returns.
void encode_and_mux(AVCodecContext* ctx, AVFormatContext* fmt, AVStream* st, AVFrame* frame, AVPacket* pkt) {
  int err = avcodec_send_frame(ctx, frame);
  if (err < 0) fail_av("encoding a video frame", err);
  while ((err = avcodec_receive_packet(ctx, pkt)) >= 0) {
    if (pkt->duration <= 0) pkt->duration = 1;  // one frame in the codec's 1/fps time base
    av_packet_rescale_ts(pkt, ctx->time_base, st->time_base);
    pkt->stream_index = st->index;
    err = av_interleaved_write_frame(fmt, pkt);
    if (err < 0) fail_av("writing a video packet", err);
  }
  if (err != AVERROR(EAGAIN) && err != AVERROR_EOF) fail_av("encoding a video frame", err);
}

// libx264 and libvpx report statistics at info level on stderr: keep to errors,
// unless the embedding program chose its own level.
void quiet_libav_logging() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (av_log_get_level() == AV_LOG_INFO) av_log_set_level(AV_LOG_ERROR);
  });
}

}  // namespace

std::string encode_video_libav(const Video& v, VideoFormat format, const std::string& comment) {
  const Target t = target_of(format);
  quiet_libav_logging();
  if (format == VideoFormat::kMp4 && (v.width % 2 || v.height % 2))
    fail(ErrorCode::kInvalidArgument, "H.264 .mp4 output (yuv420p) needs an even width and height, got " +
                                          std::to_string(v.width) + "x" + std::to_string(v.height) +
                                          "; use an even size, or write .webm, .webp or .gif");
  const AVCodec* codec = avcodec_find_encoder_by_name(t.encoder);
  if (!codec)
    fail(ErrorCode::kCapabilityNotSupported, std::string("this FFmpeg build has no ") + t.encoder +
                                                 " encoder, needed for " + t.ext +
                                                 " output; install Debian's libavcodec59 (it includes "
                                                 "libx264, libvpx and gif) or write another format");
  const AVOutputFormat* ofmt = av_guess_format(t.muxer, nullptr, nullptr);
  if (!ofmt)
    fail(ErrorCode::kCapabilityNotSupported,
         std::string("this FFmpeg build has no ") + t.muxer + " muxer; install Debian's libavformat59");

  AVFormatContext* raw_fmt = nullptr;
  int err = avformat_alloc_output_context2(&raw_fmt, ofmt, nullptr, nullptr);
  if (err < 0) fail_av("creating the video container", err);
  std::unique_ptr<AVFormatContext, FormatDeleter> fmt(raw_fmt);

  std::unique_ptr<AVCodecContext, CodecDeleter> ctx(avcodec_alloc_context3(codec));
  if (!ctx) throw std::bad_alloc();
  const AVRational rate = av_d2q(v.fps, 1001000);
  ctx->width = v.width;
  ctx->height = v.height;
  ctx->pix_fmt = t.pix_fmt;
  ctx->time_base = av_inv_q(rate);
  ctx->framerate = rate;
  if (t.pix_fmt == AV_PIX_FMT_YUV420P) {  // swscale's default RGB->YUV is BT.601, limited range
    ctx->colorspace = AVCOL_SPC_SMPTE170M;
    ctx->color_range = AVCOL_RANGE_MPEG;
  }
  if (format == VideoFormat::kMp4) {
    set_option(ctx.get(), "crf", "18");
    set_option(ctx.get(), "preset", "medium");
  } else if (format == VideoFormat::kWebm) {
    ctx->bit_rate = 0;  // constant quality
    set_option(ctx.get(), "crf", "24");
    set_option(ctx.get(), "row-mt", "1");
  }
  if (ofmt->flags & AVFMT_GLOBALHEADER) ctx->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
  err = avcodec_open2(ctx.get(), codec, nullptr);
  if (err < 0) fail_av(std::string("opening the ") + t.encoder + " encoder", err);

  AVStream* st = avformat_new_stream(fmt.get(), nullptr);
  if (!st) throw std::bad_alloc();
  err = avcodec_parameters_from_context(st->codecpar, ctx.get());
  if (err < 0) fail_av("setting the video stream parameters", err);
  st->time_base = ctx->time_base;
  st->avg_frame_rate = rate;
  // gif: the muxer does not store metadata; gif_insert_comment adds it below
  if (!comment.empty() && format != VideoFormat::kGif)
    av_dict_set(&fmt->metadata, "comment", comment.c_str(), 0);

  MemoryOutput out;
  constexpr int kIoBuffer = 1 << 16;
  auto* io_buffer = static_cast<unsigned char*>(av_malloc(kIoBuffer));
  if (!io_buffer) throw std::bad_alloc();
  std::unique_ptr<AVIOContext, IoDeleter> pb(
      avio_alloc_context(io_buffer, kIoBuffer, 1, &out, nullptr, memory_write, memory_seek));
  if (!pb) {
    av_free(io_buffer);
    throw std::bad_alloc();
  }
  fmt->pb = pb.get();
  fmt->flags |= AVFMT_FLAG_CUSTOM_IO;
  err = avformat_write_header(fmt.get(), nullptr);
  if (err < 0) fail_av(std::string("writing the ") + t.muxer + " header", err);

  std::unique_ptr<AVFrame, FrameDeleter> frame(av_frame_alloc());
  std::unique_ptr<AVPacket, PacketDeleter> pkt(av_packet_alloc());
  if (!frame || !pkt) throw std::bad_alloc();
  frame->format = t.pix_fmt;
  frame->width = v.width;
  frame->height = v.height;
  err = av_frame_get_buffer(frame.get(), 0);
  if (err < 0) fail_av("allocating a video frame", err);

  std::unique_ptr<SwsContext, SwsDeleter> sws;
  std::vector<uint32_t> palette;
  std::unique_ptr<PaletteMapper> mapper;
  if (format == VideoFormat::kGif) {
    palette = gif_palette(v);
    mapper = std::make_unique<PaletteMapper>(palette);
  } else {
    sws.reset(sws_getContext(v.width, v.height, AV_PIX_FMT_RGB24, v.width, v.height, t.pix_fmt,
                             SWS_BICUBIC | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INP, nullptr, nullptr, nullptr));
    if (!sws) fail(ErrorCode::kInternal, "cannot convert RGB frames to yuv420p (swscale)");
  }
  for (size_t i = 0; i < v.frames.size(); ++i) {
    err = av_frame_make_writable(frame.get());
    if (err < 0) fail_av("allocating a video frame", err);
    const Image& img = v.frames[i];
    if (mapper) {
      mapper->map(img, frame->data[0], frame->linesize[0]);
      std::memcpy(frame->data[1], palette.data(), 256 * sizeof(uint32_t));
    } else {
      const uint8_t* src[1] = {img.pixels.data()};
      const int src_stride[1] = {img.width * 3};
      sws_scale(sws.get(), src, src_stride, 0, img.height, frame->data, frame->linesize);
    }
    frame->pts = static_cast<int64_t>(i);
    encode_and_mux(ctx.get(), fmt.get(), st, frame.get(), pkt.get());
  }
  encode_and_mux(ctx.get(), fmt.get(), st, nullptr, pkt.get());
  err = av_write_trailer(fmt.get());
  if (err < 0) fail_av(std::string("finishing the ") + t.muxer + " file", err);
  avio_flush(pb.get());
  if (pb->error < 0) fail_av("writing the video", pb->error);
  fmt->pb = nullptr;
  return format == VideoFormat::kGif ? gif_insert_comment(out.bytes, comment) : std::move(out.bytes);
}

}  // namespace vg
