#include "server/a1111_request.h"

#include <cctype>
#include <cmath>
#include <string_view>

#include "core/error.h"
#include "core/infotext.h"
#include "io/image_io.h"
#include "server/model_details.h"

namespace vg::server {

namespace {

// A1111 (pydantic) fields: absent or null leaves the default; a number given
// for an integer is truncated, as pydantic does.
bool present(const nlohmann::json& j, const char* key) { return j.contains(key) && !j[key].is_null(); }

void take(const nlohmann::json& j, const char* key, int64_t* out) {
  if (!present(j, key)) return;
  const auto& v = j[key];
  if (v.is_number_float()) {
    const double d = v.get<double>();
    if (!std::isfinite(d) || std::fabs(d) >= 9.2e18)
      fail(ErrorCode::kInvalidArgument, std::string("'") + key + "' must be an integer");
    *out = static_cast<int64_t>(d);
    return;
  }
  *out = json_int64(v, key);
}

void take(const nlohmann::json& j, const char* key, int* out) {
  if (!present(j, key)) return;
  int64_t x = 0;
  take(j, key, &x);
  if (x < INT32_MIN || x > INT32_MAX)
    fail(ErrorCode::kInvalidArgument,
         std::string("'") + key + "' is out of range (" + std::to_string(x) + ")");
  *out = static_cast<int>(x);
}

void take(const nlohmann::json& j, const char* key, float* out) {
  if (present(j, key)) *out = json_number(j[key], key);
}

void take(const nlohmann::json& j, const char* key, std::string* out) {
  if (!present(j, key)) return;
  if (!j[key].is_string()) fail(ErrorCode::kInvalidArgument, std::string("'") + key + "' must be a string");
  *out = j[key].get<std::string>();
}

void take(const nlohmann::json& j, const char* key, bool* out) {
  if (!present(j, key)) return;
  if (j[key].is_boolean())
    *out = j[key].get<bool>();
  else if (j[key].is_number_integer() && (j[key] == 0 || j[key] == 1))
    *out = j[key] == 1;
  else
    fail(ErrorCode::kInvalidArgument, std::string("'") + key + "' must be true or false");
}

// A1111 field -> GenerateParams field, for the fields a client gave (FLUX/SD3
// take their preset for the rest).
const std::pair<const char*, const char*> kA1111Fields[] = {{"prompt", "prompt"},
                                                            {"negative_prompt", "negative_prompt"},
                                                            {"seed", "seed"},
                                                            {"steps", "steps"},
                                                            {"cfg_scale", "cfg_scale"},
                                                            {"distilled_cfg_scale", "guidance"},
                                                            {"width", "width"},
                                                            {"height", "height"},
                                                            {"eta", "eta"},
                                                            {"s_churn", "s_churn"},
                                                            {"s_noise", "s_noise"},
                                                            {"sampler_name", "sampler"},
                                                            {"sampler_index", "sampler"},
                                                            {"scheduler", "scheduler"},
                                                            {"batch_size", "batch_size"},
                                                            {"n_iter", "batch_size"},
                                                            {"denoising_strength", "strength"},
                                                            {"resize_mode", "resize_mode"},
                                                            {"mask_blur", "mask_blur"}};

std::string_view strip_blanks(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

// PNG tEXt chunks are Latin-1 (iTXt UTF-8): text that is not UTF-8 is read as Latin-1.
std::string as_utf8(const std::string& s) {
  if (valid_utf8(s)) return s;
  std::string out;
  for (unsigned char c : s) {
    if (c < 0x80)
      out += static_cast<char>(c);
    else
      out += static_cast<char>(0xC0 | (c >> 6)), out += static_cast<char>(0x80 | (c & 0x3F));
  }
  return out;
}

void take_img2img(const nlohmann::json& b, bool dit, JobRequest& r) {
  GenerateParams& p = r.params;
  if (!b.contains("init_images") || !b["init_images"].is_array() || b["init_images"].empty())
    fail(ErrorCode::kFileNotFound, "Init image not found");
  if (!b["init_images"][0].is_string())
    fail(ErrorCode::kInvalidArgument, "'init_images' must be a list of base64 images (strings)");
  r.init_image = decode_image_field(b["init_images"][0].get<std::string>(), "init_images");
  p.init_image = "(upload)";
  p.width = p.height = 0;  // the init image's size
  if (dit) p.set_fields.push_back("width"), p.set_fields.push_back("height");
  take(b, "width", &p.width);
  take(b, "height", &p.height);
  take(b, "denoising_strength", &p.strength);
  int resize_mode = 0;
  take(b, "resize_mode", &resize_mode);
  static const char* kModes[] = {"just_resize", "crop_and_resize", "resize_and_fill"};
  if (resize_mode < 0 || resize_mode > 2)
    fail(ErrorCode::kInvalidArgument, "'resize_mode' must be 0, 1 or 2");
  p.resize_mode = kModes[resize_mode];
  std::string mask;
  take(b, "mask", &mask);
  if (mask.empty()) return;
  r.mask = decode_image_field(mask, "mask");
  p.mask = "(upload)";
  p.mask_blur = 4;
  take(b, "mask_blur", &p.mask_blur);
  int invert = 0;
  take(b, "inpainting_mask_invert", &invert);
  p.invert_mask = invert != 0;
  take(b, "inpaint_full_res", &p.inpaint_full_res);
  take(b, "inpaint_full_res_padding", &p.inpaint_full_res_padding);
  p.paste_back = "on";  // A1111 always pastes back
}

}  // namespace

JobRequest a1111_request(const nlohmann::json& b, bool img2img, const std::string& default_model,
                         const FamilyOf& family_of) {
  if (!b.is_object()) fail(ErrorCode::kInvalidArgument, "the request body must be a JSON object");
  JobRequest r;
  GenerateParams& p = r.params;
  if (b.contains("override_settings") && b["override_settings"].is_object()) {
    const auto& o = b["override_settings"];
    take(o, "sd_model_checkpoint", &r.model);
    take(o, "CLIP_stop_at_last_layers", &p.clip_skip);
    if (o.contains("CLIP_stop_at_last_layers")) p.set_fields.push_back("clip_skip");
  }
  if (r.model.empty()) r.model = default_model;
  // The family decides the defaults (an unknown model is reported when the job is validated).
  const std::string family = family_of(r.model);
  const bool dit = is_dit_family(family);
  if (dit) {
    for (const auto& [key, field] : kA1111Fields)
      if (present(b, key)) p.set_fields.push_back(field);
  } else {  // A1111's own defaults, as A1111 runs SD models
    p.steps = 50;
    p.cfg_scale = 7.0f;
    p.width = p.height = 512;
    p.set_fields.clear();
  }
  if (dit) p.set_fields.push_back("prompt_syntax");  // so the preset applies even to a bare request
  p.prompt_syntax = "a1111";  // A1111 clients write (word:1.2), [word], BREAK and long prompts
  take(b, "prompt", &p.prompt);
  take(b, "negative_prompt", &p.negative_prompt);
  take(b, "seed", &p.seed);
  take(b, "steps", &p.steps);
  take(b, "cfg_scale", &p.cfg_scale);
  // Forge's Flux "Distilled CFG Scale"; other families have no such input (Forge ignores it there too)
  if (family == "flux") take(b, "distilled_cfg_scale", &p.guidance);
  take(b, "width", &p.width);
  take(b, "height", &p.height);
  take(b, "eta", &p.eta);
  take(b, "s_churn", &p.s_churn);
  take(b, "s_noise", &p.s_noise);
  std::string sampler = dit ? p.sampler : "Euler";
  take(b, "sampler_index", &sampler);
  take(b, "sampler_name", &sampler);
  p.sampler = sampler;
  std::string sched;
  take(b, "scheduler", &sched);
  if (!sched.empty()) p.scheduler = sched;
  int batch = 1, n_iter = 1;
  take(b, "batch_size", &batch);
  take(b, "n_iter", &n_iter);
  const int64_t images = static_cast<int64_t>(batch) * n_iter;
  if (batch < 1 || n_iter < 1 || images > 1000)
    fail(ErrorCode::kInvalidArgument,
         "'batch_size' and 'n_iter' must be at least 1, with at most 1000 images in all");
  p.batch_size = static_cast<int>(images);
  if (img2img) take_img2img(b, dit, r);
  return r;
}

nlohmann::json a1111_png_info(const nlohmann::json& body) {
  if (!body.is_object()) fail(ErrorCode::kInvalidArgument, "the request body must be a JSON object");
  std::string image;
  take(body, "image", &image);
  std::string info;
  if (!strip_blanks(image).empty()) {
    auto bytes = base64_decode(std::string(strip_blanks(image)));
    if (!bytes) fail(ErrorCode::kInvalidArgument, "'image' is not valid base64 image data");
    info = as_utf8(read_png_parameters(*bytes));
  }
  return {{"info", info}, {"items", nlohmann::json::object()}, {"parameters", parse_infotext(info)}};
}

}  // namespace vg::server
