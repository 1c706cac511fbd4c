// Animated WebP via libwebpmux's WebPAnimEncoder; the comment goes into an
// XMP chunk (dc:description), which WebP viewers and exiftool read.
#include <webp/encode.h>
#include <webp/mux.h>

#include <cmath>
#include <memory>

#include "core/error.h"
#include "io/video_encoders.h"

namespace vg {

namespace {

std::string xml_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string xmp_packet(const std::string& comment) {
  return "<?xpacket begin=\"\xEF\xBB\xBF\" id=\"W5M0MpCehiHzreSzNTczkc9d\"?>\n"
         "<x:xmpmeta xmlns:x=\"adobe:ns:meta/\"><rdf:RDF "
         "xmlns:rdf=\"http://www.w3.org/1999/02/22-rdf-syntax-ns#\">"
         "<rdf:Description rdf:about=\"\" xmlns:dc=\"http://purl.org/dc/elements/1.1/\">"
         "<dc:description><rdf:Alt><rdf:li xml:lang=\"x-default\">" +
         xml_escape(comment) +
         "</rdf:li></rdf:Alt></dc:description></rdf:Description></rdf:RDF></x:xmpmeta>\n"
         "<?xpacket end=\"w\"?>";
}

struct AnimDeleter {
  void operator()(WebPAnimEncoder* e) const { WebPAnimEncoderDelete(e); }
};
struct MuxDeleter {
  void operator()(WebPMux* m) const { WebPMuxDelete(m); }
};
struct PictureGuard {
  WebPPicture pic;
  PictureGuard() { WebPPictureInit(&pic); }
  ~PictureGuard() { WebPPictureFree(&pic); }
};

int timestamp_ms(size_t frame, double fps) { return static_cast<int>(std::lround(frame * 1000.0 / fps)); }

}  // namespace

std::string encode_video_webp(const Video& v, const std::string& comment) {
  if (v.width > WEBP_MAX_DIMENSION || v.height > WEBP_MAX_DIMENSION)
    fail(ErrorCode::kInvalidArgument, "WebP is limited to " + std::to_string(WEBP_MAX_DIMENSION) +
                                          " pixels a side; write .mp4 or .webm instead");
  WebPAnimEncoderOptions opts;
  WebPConfig config;
  if (!WebPAnimEncoderOptionsInit(&opts) || !WebPConfigInit(&config))
    fail(ErrorCode::kCapabilityNotSupported, "libwebpmux does not match its headers; reinstall libwebp-dev");
  opts.anim_params.loop_count = 0;  // forever
  // lossless: the frames come back exactly (lossy WebP is 4:2:0, like the mp4/webm outputs)
  if (!WebPConfigLosslessPreset(&config, 4)) fail(ErrorCode::kInternal, "WebP lossless preset rejected");
  std::unique_ptr<WebPAnimEncoder, AnimDeleter> enc(WebPAnimEncoderNew(v.width, v.height, &opts));
  if (!enc) throw std::bad_alloc();
  for (size_t i = 0; i < v.frames.size(); ++i) {
    PictureGuard g;
    g.pic.use_argb = 1;
    g.pic.width = v.width;
    g.pic.height = v.height;
    if (!WebPPictureImportRGB(&g.pic, v.frames[i].pixels.data(), v.width * 3)) throw std::bad_alloc();
    if (!WebPAnimEncoderAdd(enc.get(), &g.pic, timestamp_ms(i, v.fps), &config))
      fail(ErrorCode::kInternal,
           std::string("WebP animation encoding failed: ") + WebPAnimEncoderGetError(enc.get()));
  }
  // the end time fixes the last frame's duration
  if (!WebPAnimEncoderAdd(enc.get(), nullptr, timestamp_ms(v.frames.size(), v.fps), nullptr))
    fail(ErrorCode::kInternal,
         std::string("WebP animation encoding failed: ") + WebPAnimEncoderGetError(enc.get()));
  WebPData anim;
  WebPDataInit(&anim);
  if (!WebPAnimEncoderAssemble(enc.get(), &anim))
    fail(ErrorCode::kInternal,
         std::string("WebP animation encoding failed: ") + WebPAnimEncoderGetError(enc.get()));
  if (comment.empty()) {
    std::string bytes(reinterpret_cast<const char*>(anim.bytes), anim.size);
    WebPDataClear(&anim);
    return bytes;
  }
  std::unique_ptr<WebPMux, MuxDeleter> mux(WebPMuxCreate(&anim, 1));
  WebPDataClear(&anim);
  if (!mux) fail(ErrorCode::kInternal, "libwebpmux cannot read the animation it encoded");
  const std::string xmp = xmp_packet(comment);
  const WebPData xmp_data{reinterpret_cast<const uint8_t*>(xmp.data()), xmp.size()};
  WebPData out;
  WebPDataInit(&out);
  if (WebPMuxSetChunk(mux.get(), "XMP ", &xmp_data, 1) != WEBP_MUX_OK ||
      WebPMuxAssemble(mux.get(), &out) != WEBP_MUX_OK)
    fail(ErrorCode::kInternal, "adding the XMP metadata chunk to the WebP animation failed");
  std::string bytes(reinterpret_cast<const char*>(out.bytes), out.size);
  WebPDataClear(&out);
  return bytes;
}

}  // namespace vg
