// Video output (io/video_io.h) against the wan22-tiny export case, read back
// with Debian's ffprobe/ffmpeg and libwebpdemux.
#include "io/video_io.h"

#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>
#include <webp/demux.h>

#include <filesystem>
#include <sstream>

#include "io/image_io.h"
#include "test_util.h"

namespace vg {
namespace {

namespace fs = std::filesystem;

const std::string kCase = "t2v_unipc_f5_s4_cfg5_neg_96x64";
// Generation parameters with the characters containers must keep: quotes, <&>, a newline, UTF-8.
const std::string kComment =
    "a cat <on> a \"red\" sofa & caf\xC3\xA9\nSteps: 4, Sampler: UniPC, CFG scale: 5, Seed: 42, Size: 96x64";

std::string pipelines() { return test::fixtures() + "/wan22-tiny/pipelines/"; }

// stdout of a shell command (binary-safe); fails the test on a non-zero exit.
std::string run(const std::string& cmd) {
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  std::array<char, 65536> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  EXPECT_EQ(pclose(p), 0) << cmd << " (Debian ffmpeg: scripts/install-deps.sh --test)";
  return out;
}

double psnr(const std::string& a, const std::string& b) {
  EXPECT_EQ(a.size(), b.size());
  double se = 0;
  const size_t n = std::min(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    const double d = static_cast<double>(static_cast<uint8_t>(a[i])) - static_cast<uint8_t>(b[i]);
    se += d * d;
  }
  return se == 0 ? 99.0 : 10 * std::log10(255.0 * 255.0 / (se / std::max<size_t>(n, 1)));
}

std::string concat_frames(const Video& v) {
  std::string s;
  for (const Image& f : v.frames) s.append(reinterpret_cast<const char*>(f.pixels.data()), f.pixels.size());
  return s;
}

nlohmann::json probe(const std::string& path) {
  const std::string out =
      run("ffprobe -v error -count_frames -select_streams v:0 -show_entries "
          "stream=codec_name,pix_fmt,width,height,r_frame_rate,nb_read_frames:format="
          "duration:format_tags -of json '" +
          path + "'");
  return nlohmann::json::parse(out);
}

// Format tags are case-insensitive (Matroska stores COMMENT).
std::string comment_tag(const nlohmann::json& j) {
  const nlohmann::json tags = j["format"].value("tags", nlohmann::json::object());
  for (const auto& [k, val] : tags.items())
    if (k == "comment" || k == "COMMENT") return val.get<std::string>();
  return "<none>";
}

class VideoIo : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = (fs::temp_directory_path() / ("vg_video_" + std::to_string(getpid()))).string();
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    auto file = open_tensor_file(pipelines() + kCase + ".safetensors");
    video_ = video_from_frames01(file->load_f32("frames"), 24);
    reference_ = read_file(pipelines() + kCase + "_24fps_export_u8.rgb24");
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Writes `ext`, checks what ffprobe reads back and returns the PSNR of ffmpeg's decode.
  double check_ffmpeg_video(const std::string& ext, const std::string& codec) {
    const std::string path = dir_ + "/out" + ext;
    write_video(path, video_, kComment);
    const nlohmann::json j = probe(path);
    const auto& st = j["streams"][0];
    EXPECT_EQ(st["codec_name"], codec);
    EXPECT_EQ(st["pix_fmt"], "yuv420p");
    EXPECT_EQ(st["width"], 96);
    EXPECT_EQ(st["height"], 64);
    EXPECT_EQ(st["r_frame_rate"], "24/1");
    EXPECT_EQ(st["nb_read_frames"], "5");
    EXPECT_EQ(comment_tag(j), kComment);
    // The tiny model's frames are close to noise, so 4:2:0 chroma subsampling alone costs most of the
    // RGB PSNR (even a lossless yuv420p encode stays far below 35 dB): the codec is measured in
    // yuv420p against the reference frames converted by Debian's ffmpeg, as the fixture's host encode was.
    const std::string ref_yuv = run("ffmpeg -v error -f rawvideo -pix_fmt rgb24 -s 96x64 -i '" + pipelines() +
                                    kCase + "_24fps_export_u8.rgb24' -f rawvideo -pix_fmt yuv420p -");
    const double p = psnr(run("ffmpeg -v error -i '" + path + "' -f rawvideo -pix_fmt yuv420p -"), ref_yuv);
    const double rgb =
        psnr(run("ffmpeg -v error -i '" + path + "' -f rawvideo -pix_fmt rgb24 -"), reference_);
    const double host =
        psnr(run("ffmpeg -v error -i '" + pipelines() + kCase + "_24fps.mp4' -f rawvideo -pix_fmt rgb24 -"),
             reference_);
    std::printf(
        "%s (%zu bytes) PSNR vs the truncated frames: yuv420p %.2f dB, rgb24 %.2f dB (the fixture's crf-26 "
        "mp4: rgb24 %.2f dB)\n",
        ext.c_str(), static_cast<size_t>(fs::file_size(path)), p, rgb, host);
    return p;
  }

  std::string dir_;
  Video video_;
  std::string reference_;
};

TEST_F(VideoIo, FramesTruncateLikeExportToVideo) {
  ASSERT_EQ(video_.frames.size(), 5u);
  EXPECT_EQ(video_.width, 96);
  EXPECT_EQ(video_.height, 64);
  EXPECT_EQ(concat_frames(video_), reference_);
  // rounding would differ: truncation is what is being checked
  auto file = open_tensor_file(pipelines() + kCase + ".safetensors");
  const Tensor f = file->load_f32("frames");
  int64_t differ = 0;
  for (int64_t i = 0; i < f.numel(); ++i)
    differ += static_cast<uint8_t>(reference_[i]) != static_cast<int>(std::lround(f.data()[i] * 255.0f));
  EXPECT_GT(differ, f.numel() / 10);
  EXPECT_EQ(test::code_of([] {
              video_from_frames01(Tensor::zeros({5, 64, 96}), 24);
            }),
            ErrorCode::kInvalidArgument);
}

TEST_F(VideoIo, Mp4IsH264WithComment) { EXPECT_GE(check_ffmpeg_video(".mp4", "h264"), 35.0); }

TEST_F(VideoIo, WebmIsVp9WithComment) { EXPECT_GE(check_ffmpeg_video(".webm", "vp9"), 35.0); }

TEST_F(VideoIo, GifFramesTimingAndComment) {
  const std::string path = dir_ + "/out.GIF";  // extension case does not matter
  write_video(path, video_, kComment);
  const nlohmann::json j = probe(path);
  const auto& st = j["streams"][0];
  EXPECT_EQ(st["codec_name"], "gif");
  EXPECT_EQ(st["width"], 96);
  EXPECT_EQ(st["height"], 64);
  EXPECT_EQ(st["nb_read_frames"], "5");
  // GIF delays are whole 1/100 s: 4 or 5 for 24 fps, 5/24 s in all
  EXPECT_NEAR(std::stod(j["format"]["duration"].get<std::string>()), 5.0 / 24, 0.011);
  const std::string delays = run("ffprobe -v error -show_entries packet=duration -of csv=p=0 '" + path + "'");
  std::istringstream lines(delays);
  int packets = 0;
  for (std::string d; std::getline(lines, d); ++packets) EXPECT_TRUE(d == "4" || d == "5") << d;
  EXPECT_EQ(packets, 5);
  EXPECT_EQ(comment_tag(j), kComment);
  const double p = psnr(run("ffmpeg -v error -i '" + path + "' -f rawvideo -pix_fmt rgb24 -"), reference_);
  std::printf(".gif PSNR vs the truncated frames: %.2f dB\n", p);
  EXPECT_GE(p, 25.0);  // one 256-colour palette for noise-like frames, no dithering
}

TEST_F(VideoIo, AnimatedWebpFramesTimingAndXmp) {
  const std::string path = dir_ + "/out.webp";
  write_video(path, video_, kComment);
  const std::string bytes = read_file(path);
  WebPData data{reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()};
  WebPAnimDecoderOptions opts;
  ASSERT_TRUE(WebPAnimDecoderOptionsInit(&opts));
  opts.color_mode = MODE_RGBA;
  WebPAnimDecoder* dec = WebPAnimDecoderNew(&data, &opts);
  ASSERT_NE(dec, nullptr);
  WebPAnimInfo info;
  ASSERT_TRUE(WebPAnimDecoderGetInfo(dec, &info));
  EXPECT_EQ(info.canvas_width, 96u);
  EXPECT_EQ(info.canvas_height, 64u);
  EXPECT_EQ(info.frame_count, 5u);
  EXPECT_EQ(info.loop_count, 0u);
  std::string decoded;
  for (int i = 0; WebPAnimDecoderHasMoreFrames(dec); ++i) {
    uint8_t* rgba;
    int ts;
    ASSERT_TRUE(WebPAnimDecoderGetNext(dec, &rgba, &ts));
    EXPECT_EQ(ts, std::lround((i + 1) * 1000.0 / 24)) << "end time of frame " << i;
    for (int k = 0; k < 96 * 64; ++k) decoded.append(reinterpret_cast<const char*>(rgba + 4 * k), 3);
  }
  WebPAnimDecoderDelete(dec);
  std::printf(".webp (%zu bytes, lossless)\n", bytes.size());
  EXPECT_TRUE(decoded == reference_) << "lossless WebP frames differ: PSNR " << psnr(decoded, reference_);

  WebPDemuxer* demux = WebPDemux(&data);
  ASSERT_NE(demux, nullptr);
  WebPChunkIterator chunk;
  ASSERT_TRUE(WebPDemuxGetChunk(demux, "XMP ", 1, &chunk));
  const std::string xmp(reinterpret_cast<const char*>(chunk.chunk.bytes), chunk.chunk.size);
  WebPDemuxReleaseChunkIterator(&chunk);
  WebPDemuxDelete(demux);
  EXPECT_NE(
      xmp.find("<dc:description><rdf:Alt><rdf:li xml:lang=\"x-default\">a cat &lt;on&gt; a &quot;red&quot; "
               "sofa &amp; caf\xC3\xA9\nSteps: 4,"),
      std::string::npos)
      << xmp;
}

TEST_F(VideoIo, FramesFolderHoldsTruncatedPngs) {
  const std::string out = dir_ + "/frames/nested";
  write_video_frames(out, video_, kComment);
  EXPECT_EQ(std::distance(fs::directory_iterator(out), fs::directory_iterator()), 5);
  for (int i = 0; i < 5; ++i) {
    char name[32];
    std::snprintf(name, sizeof(name), "/frame_%04d.png", i);
    const std::string png = read_file(out + name);
    EXPECT_EQ(read_png_parameters(png), kComment);
    const Image img = decode_png(png, name);
    // exactly the video's (truncated) frames; the fixture's PNGs round, so they are within one level
    EXPECT_EQ(img.pixels, video_.frames[i].pixels) << name;
    const char* which = i == 0 ? "first" : i == 2 ? "middle" : i == 4 ? "last" : nullptr;
    if (!which) continue;
    std::snprintf(name, sizeof(name), "_frame%02d_%s.png", i, which);
    const Image rounded = decode_png(read_file(pipelines() + kCase + name), name);
    ASSERT_EQ(rounded.pixels.size(), img.pixels.size());
    for (size_t k = 0; k < img.pixels.size(); ++k) {
      const int d = rounded.pixels[k] - img.pixels[k];
      ASSERT_TRUE(d == 0 || d == 1) << name << " byte " << k;
    }
  }
}

TEST_F(VideoIo, BadRequestsAreInvalidArgument) {
  EXPECT_TRUE(is_video_path("a/b.MP4"));
  EXPECT_TRUE(is_video_path("x.webm"));
  EXPECT_TRUE(is_video_path("x.webp"));
  EXPECT_TRUE(is_video_path("x.gif"));
  EXPECT_FALSE(is_video_path("x.png"));
  EXPECT_FALSE(is_video_path("mp4"));
  try {
    write_video(dir_ + "/out.avi", video_, kComment);
    ADD_FAILURE() << "no error for .avi";
  } catch (const VgException& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find(".mp4, .webm, .webp or .gif"), std::string::npos) << e.what();
  }
  // H.264 4:2:0 needs even sizes; VP9 takes odd ones
  Video odd;
  odd.width = 95;
  odd.height = 63;
  for (const Image& f : video_.frames) {
    Image c{95, 63, 3, {}};
    for (int y = 0; y < 63; ++y)
      c.pixels.insert(c.pixels.end(), f.pixels.begin() + y * 96 * 3, f.pixels.begin() + (y * 96 + 95) * 3);
    odd.frames.push_back(c);
  }
  EXPECT_EQ(test::code_of([&] { write_video(dir_ + "/odd.mp4", odd, ""); }), ErrorCode::kInvalidArgument);
  write_video(dir_ + "/odd.webm", odd, "");
  EXPECT_EQ(probe(dir_ + "/odd.webm")["streams"][0]["width"], 95);
  EXPECT_EQ(test::code_of([&] { write_video(dir_ + "/none.mp4", Video{}, ""); }),
            ErrorCode::kInvalidArgument);
  EXPECT_FALSE(fs::exists(dir_ + "/odd.mp4"));
  EXPECT_FALSE(fs::exists(dir_ + "/none.mp4"));
}

// A file size limit (as a full disk would) fails the write: io_error, nothing at
// the target, no temp file beside it.
TEST_F(VideoIo, FullDiskLeavesNoFile) {
  for (const std::string ext : {".mp4", ".gif"}) {
    const std::string path = dir_ + "/full" + ext;
    const pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      signal(SIGXFSZ, SIG_IGN);
      rlimit lim{1024, 1024};
      setrlimit(RLIMIT_FSIZE, &lim);
      int code = 0;
      try {
        write_video(path, video_, kComment);
      } catch (const VgException& e) {
        code = static_cast<int>(e.code());
      }
      _exit(code);
    }
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), static_cast<int>(ErrorCode::kDiskFull)) << ext;
    EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), 0) << ext;
  }
}

}  // namespace
}  // namespace vg
