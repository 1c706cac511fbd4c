// The C API's handle types and helpers shared by src/capi/*.cpp. Every
// exported function catches everything: no C++ exception crosses the C API.
#pragma once
#include <atomic>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"
#include "visiongen/visiongen.h"
#include "visiongen/visiongen_c.h"

struct vg_context {
  int threads = 0;
  std::string default_model;  // vg_context_default_model(), found once from the data folder
};

struct vg_model {
  std::unique_ptr<vg::Engine> engine;
  std::string info_json;
  std::mutex run_mutex;  // one generation at a time per model
};

struct vg_result {
  vg::GenerateResult result;
  std::string metadata_json;
};

namespace vg::capi {

// A request converted from vg_params: the engine's params plus owned copies
// of the input images.
struct Request {
  GenerateParams params;
  std::unique_ptr<Image> init_image, mask;
  ImageInputs inputs() const { return {init_image.get(), mask.get()}; }
};

// Records the message for vg_last_error() and returns the code as vg_status.
vg_status fail_with(const Error& e);
vg_status fail_with(vg_status code, const std::string& message);
// Runs fn (returning vg_status), turning any exception into a status.
template <typename Fn>
vg_status protect(Fn&& fn) {
  auto r = guard([&] { return static_cast<int>(fn()); });
  return r ? static_cast<vg_status>(*r) : fail_with(r.error());
}

// Copies min(struct_size, sizeof(T)) bytes of `in` over T's defaults (older
// callers' shorter structs keep the newer fields' defaults).
template <typename T>
T versioned_copy(const T* in, void (*init)(T*)) {
  T out;
  init(&out);
  if (!in) return out;
  const size_t n = in->struct_size < sizeof(T) ? in->struct_size : sizeof(T);
  std::memcpy(static_cast<void*>(&out), in, n);
  out.struct_size = sizeof(T);
  return out;
}

// Writes `full` (a struct of library defaults) into the caller's struct,
// no more than `size` bytes (the caller's sizeof), with struct_size set.
template <typename T>
void sized_init(T* out, size_t size, T full) {
  if (!out) return;
  const size_t n = size < sizeof(T) ? size : sizeof(T);
  full.struct_size = static_cast<uint32_t>(n);
  std::memcpy(static_cast<void*>(out), &full, n);
}

Result<Request> to_request(const vg_params& p);
// A view of an image the library owns (a result's, a preview's).
inline vg_image to_c(const Image& im) { return vg_image{im.width, im.height, im.channels, im.pixels.data()}; }
// A vg_image (RGB8/RGBA8) as an owned vg::Image; invalid_argument if malformed.
Image image_from_c(const vg_image& im, const char* what);
// The runner shared by vg_generate and jobs: locks the model, runs, wraps the result.
vg_status run(vg_model* model, const Request& req, const vg_callbacks& cb, const std::atomic<bool>* cancel,
              vg_result** out);
std::string result_metadata(const GenerateParams& p, const GenerateResult& r);

}  // namespace vg::capi
