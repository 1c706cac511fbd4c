// C API: results (images, clips, metadata) and image/video files.
#include <nlohmann/json.hpp>

#include "capi/capi_internal.h"
#include "core/params_json.h"
#include "io/image_decode.h"

namespace vg::capi {

std::string result_metadata(const GenerateParams& p, const GenerateResult& r) {
  const StageTimings& t = r.timings;
  nlohmann::json j = {
      {"params", params_to_json(p)},
      {"seeds", r.seeds},
      {"infotext", r.infotext},
      {"warnings", r.warnings},
      {"applied_preset_patch", nlohmann::json::parse(r.applied_preset_patch.empty() ? "{}" : r.applied_preset_patch,
                                                     nullptr, false)},
      {"sampling",
       {{"sampler", r.sampling.sampler_effective}, {"scheduler", r.sampling.scheduler_effective}, {"rng", r.sampling.rng}}},
      {"timings",
       {{"load_s", t.load_s}, {"text_encode_s", t.text_encode_s}, {"denoise_s", t.denoise_s}, {"decode_s", t.decode_s}}}};
  return j.dump();
}

}  // namespace vg::capi

using vg::capi::fail_with;
using vg::capi::protect;

namespace {

vg_status out_of_range(const char* what, size_t index, size_t count) {
  return fail_with(VG_INVALID_ARGUMENT, std::string(what) + " " + std::to_string(index) + " is out of range (the result has " +
                                            std::to_string(count) + ")");
}

// RGBA8 whose alpha is 255 everywhere -> RGB8 (decoding always gives RGBA8).
void drop_opaque_alpha(vg::Image* im) {
  if (im->channels != 4) return;
  const size_t n = static_cast<size_t>(im->width) * im->height;
  for (size_t i = 0; i < n; ++i)
    if (im->pixels[i * 4 + 3] != 255) return;
  for (size_t i = 0; i < n; ++i)
    for (int c = 0; c < 3; ++c) im->pixels[i * 3 + c] = im->pixels[i * 4 + c];
  im->pixels.resize(n * 3);
  im->channels = 3;
}

// Clip `video` of the result written by `save` (a file or a folder of frames)
// with its infotext.
vg_status save_clip(const char* fn, const vg_result* r, size_t video, const char* target,
                    vg::Status (*save)(const vg::Video&, const std::string&, const std::string&)) {
  return protect([&] {
    if (!r || !target || !*target) return fail_with(VG_INVALID_ARGUMENT, std::string(fn) + ": result and path are required");
    if (video >= r->result.videos.size()) return out_of_range("video", video, r->result.videos.size());
    const std::string info = video < r->result.infotext.size() ? r->result.infotext[video] : "";
    auto st = save(r->result.videos[video], target, info);
    return st ? VG_OK : fail_with(st.error());
  });
}

}  // namespace

extern "C" {

size_t vg_result_image_count(const vg_result* r) { return r ? r->result.images.size() : 0; }

vg_status vg_result_image(const vg_result* r, size_t index, vg_image* out) {
  if (!r || !out) return fail_with(VG_INVALID_ARGUMENT, "vg_result_image: result and out must not be NULL");
  if (index >= r->result.images.size()) return out_of_range("image", index, r->result.images.size());
  *out = vg::capi::to_c(r->result.images[index]);
  return VG_OK;
}

size_t vg_result_video_count(const vg_result* r) { return r ? r->result.videos.size() : 0; }

size_t vg_result_frame_count(const vg_result* r, size_t video) {
  return r && video < r->result.videos.size() ? r->result.videos[video].frames.size() : 0;
}

vg_status vg_result_frame(const vg_result* r, size_t video, size_t frame, vg_image* out) {
  if (!r || !out) return fail_with(VG_INVALID_ARGUMENT, "vg_result_frame: result and out must not be NULL");
  if (video >= r->result.videos.size()) return out_of_range("video", video, r->result.videos.size());
  const auto& frames = r->result.videos[video].frames;
  if (frame >= frames.size()) return out_of_range("frame", frame, frames.size());
  *out = vg::capi::to_c(frames[frame]);
  return VG_OK;
}

double vg_result_fps(const vg_result* r, size_t video) {
  return r && video < r->result.videos.size() ? r->result.videos[video].fps : 0.0;
}

const char* vg_result_infotext(const vg_result* r, size_t index) {
  return r && index < r->result.infotext.size() ? r->result.infotext[index].c_str() : "";
}

uint64_t vg_result_seed(const vg_result* r, size_t index) {
  return r && index < r->result.seeds.size() ? r->result.seeds[index] : 0;
}

const char* vg_result_metadata_json(const vg_result* r) { return r ? r->metadata_json.c_str() : "{}"; }

void vg_result_free(vg_result* r) { delete r; }

vg_status vg_image_save(const vg_image* image, const char* path, const char* infotext) {
  return protect([&] {
    if (!image || !path || !*path) return fail_with(VG_INVALID_ARGUMENT, "vg_image_save: image and path are required");
    auto st = vg::save_image(vg::capi::image_from_c(*image, "image"), path, infotext ? infotext : "");
    return st ? VG_OK : fail_with(st.error());
  });
}

vg_status vg_image_load(const char* path, vg_image* out) {
  return protect([&] {
    if (!out || !path) return fail_with(VG_INVALID_ARGUMENT, "vg_image_load: path and out are required");
    *out = vg_image{};
    vg::Image im = vg::read_image_file(path);
    drop_opaque_alpha(&im);
    const size_t n = im.pixels.size();
    auto* px = static_cast<uint8_t*>(std::malloc(n ? n : 1));
    if (!px) return fail_with(VG_OUT_OF_MEMORY, "out of memory");
    std::memcpy(px, im.pixels.data(), n);
    *out = vg_image{im.width, im.height, im.channels, px};
    return VG_OK;
  });
}

void vg_image_release(vg_image* image) {
  if (!image) return;
  std::free(const_cast<uint8_t*>(image->pixels));
  *image = vg_image{};
}

vg_status vg_result_save_video(const vg_result* r, size_t video, const char* path) {
  return save_clip("vg_result_save_video", r, video, path, vg::save_video);
}

vg_status vg_result_save_frames(const vg_result* r, size_t video, const char* dir) {
  return save_clip("vg_result_save_frames", r, video, dir, vg::save_video_frames);
}

}  // extern "C"
