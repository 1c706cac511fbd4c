// C API: vg_params <-> GenerateParams through the params table's JSON names
// (core/params_json), so the C struct, the HTTP APIs and the CLI agree.
#include <nlohmann/json.hpp>
#include <variant>

#include "capi/capi_internal.h"
#include "core/params_json.h"

namespace vg::capi {

namespace {

// vg_params' fields by their params-table names: read into JSON by
// struct_fields, filled from GenerateParams' defaults by vg_params_init. The
// table reads them strictly, so a name it lacks fails every call (the C
// test's vg_params_to_json of a default struct covers them all). Images
// travel as buffers, not as paths.
using CMember = std::variant<const char* vg_params::*, int32_t vg_params::*, int64_t vg_params::*, float vg_params::*>;
const std::pair<const char*, CMember> kFields[] = {
    {"task", &vg_params::task},         {"prompt", &vg_params::prompt},
    {"negative_prompt", &vg_params::negative_prompt}, {"width", &vg_params::width},
    {"height", &vg_params::height},     {"steps", &vg_params::steps},
    {"cfg_scale", &vg_params::cfg_scale}, {"seed", &vg_params::seed},
    {"sampler", &vg_params::sampler},   {"scheduler", &vg_params::scheduler},
    {"batch_size", &vg_params::batch_size}, {"strength", &vg_params::strength},
    {"guidance", &vg_params::guidance}, {"frames", &vg_params::frames},
    {"fps", &vg_params::fps},           {"preview_every", &vg_params::preview_every},
    {"loras", &vg_params::loras},
};

// GenerateParams' defaults, as an object (vg_params_init's strings point into
// it) and as JSON (what "given" is measured against).
GenerateParams& defaults() {
  static GenerateParams d;
  return d;
}
const nlohmann::json& defaults_json() {
  static const nlohmann::json j = params_to_json(defaults());
  return j;
}

nlohmann::json struct_fields(const vg_params& p) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [name, member] : kFields)
    std::visit(
        [&, n = name](auto m) {
          if constexpr (std::is_same_v<decltype(p.*m), const char* const&>) {
            if (p.*m) j[n] = p.*m;
          } else {
            j[n] = p.*m;
          }
        },
        member);
  return j;
}

}  // namespace

Image image_from_c(const vg_image& im, const char* what) {
  if (!im.pixels || im.width <= 0 || im.height <= 0 || (im.channels != 3 && im.channels != 4))
    fail(ErrorCode::kInvalidArgument, std::string(what) + " must be an RGB8 or RGBA8 vg_image with pixels and a positive size");
  if (static_cast<int64_t>(im.width) * im.height > (int64_t{1} << 28))
    fail(ErrorCode::kInvalidArgument, std::string(what) + " is too large (more than 2^28 pixels)");
  Image out;
  out.width = im.width;
  out.height = im.height;
  out.channels = im.channels;
  out.pixels.assign(im.pixels, im.pixels + static_cast<size_t>(im.width) * im.height * im.channels);
  return out;
}

Result<Request> to_request(const vg_params& p) {
  nlohmann::json j = struct_fields(p);
  std::vector<std::string> given;
  const nlohmann::json& d = defaults_json();
  for (auto it = j.begin(); it != j.end(); ++it)
    if (!d.contains(it.key()) || d[it.key()] != it.value()) given.push_back(it.key());
  if (p.extra_json && *p.extra_json) {
    nlohmann::json extra = nlohmann::json::parse(p.extra_json, nullptr, false);
    if (extra.is_discarded() || !extra.is_object())
      return Error{ErrorCode::kInvalidArgument, "extra_json must be a JSON object, e.g. {\"clip_skip\": 2}"};
    for (auto it = extra.begin(); it != extra.end(); ++it) {
      j[it.key()] = it.value();
      given.push_back(it.key());
    }
  }
  Request r;
  Status st = params_from_json(j, &r.params, /*strict=*/true);
  if (!st) return st.error();
  r.params.set_fields = given;
  if (p.init_image) r.init_image = std::make_unique<Image>(image_from_c(*p.init_image, "init_image"));
  if (p.mask) r.mask = std::make_unique<Image>(image_from_c(*p.mask, "mask"));
  if (r.mask && !r.init_image) return Error{ErrorCode::kInvalidArgument, "a mask needs an init_image to inpaint"};
  // Buffers, not paths: the infotext and the task choice still see that they were given.
  if (r.init_image && r.params.init_image.empty()) r.params.init_image = "(image)";
  if (r.mask && r.params.mask.empty()) r.params.mask = "(mask)";
  return r;
}

}  // namespace vg::capi

using vg::capi::fail_with;
using vg::capi::protect;

extern "C" {

void vg_params_init_sized(vg_params* out, size_t size) {
  vg_params full{};
  for (const auto& [name, member] : vg::capi::kFields)
    std::visit(
        [&, n = name](auto m) {
          using T = std::remove_const_t<std::remove_reference_t<decltype(full.*m)>>;
          if constexpr (std::is_same_v<T, const char*>) full.*m = vg::params_string_field(vg::capi::defaults(), n)->c_str();
          else full.*m = vg::capi::defaults_json()[n].get<T>();
        },
        member);
  vg::capi::sized_init(out, size, full);
}

vg_status vg_params_to_json(const vg_params* params, char** json_out) {
  return protect([&] {
    if (!json_out) return fail_with(VG_INVALID_ARGUMENT, "vg_params_to_json: json_out must not be NULL");
    *json_out = nullptr;
    auto r = vg::capi::to_request(vg::capi::versioned_copy(params, vg_params_init));
    if (!r) return fail_with(r.error());
    const std::string s = vg::params_to_json(r->params).dump();
    *json_out = static_cast<char*>(std::malloc(s.size() + 1));
    if (!*json_out) return fail_with(VG_OUT_OF_MEMORY, "out of memory");
    std::memcpy(*json_out, s.c_str(), s.size() + 1);
    return VG_OK;
  });
}

void vg_string_free(char* s) { std::free(s); }

}  // extern "C"
