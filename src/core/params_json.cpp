#include "core/params_json.h"

#include <variant>

namespace vg {

namespace {

using Member = std::variant<std::string GenerateParams::*, int GenerateParams::*, int64_t GenerateParams::*,
                            float GenerateParams::*, bool GenerateParams::*>;

const std::vector<std::pair<const char*, Member>>& members() {
  using P = GenerateParams;
  static const std::vector<std::pair<const char*, Member>> k = {
      {"task", &P::task},
      {"mode", &P::mode},
      {"prompt", &P::prompt},
      {"loras", &P::loras},
      {"negative_prompt", &P::negative_prompt},
      {"width", &P::width},
      {"height", &P::height},
      {"steps", &P::steps},
      {"cfg_scale", &P::cfg_scale},
      {"seed", &P::seed},
      {"clip_skip", &P::clip_skip},
      {"sampler", &P::sampler},
      {"scheduler", &P::scheduler},
      {"rng", &P::rng},
      {"eta", &P::eta},
      {"s_noise", &P::s_noise},
      {"s_churn", &P::s_churn},
      {"batch_size", &P::batch_size},
      {"preview_every", &P::preview_every},
      {"init_image", &P::init_image},
      {"strength", &P::strength},
      {"mask", &P::mask},
      {"mask_blur", &P::mask_blur},
      {"invert_mask", &P::invert_mask},
      {"inpaint_full_res", &P::inpaint_full_res},
      {"inpaint_full_res_padding", &P::inpaint_full_res_padding},
      {"resize_mode", &P::resize_mode},
      {"paste_back", &P::paste_back},
      {"vae_tiling", &P::vae_tiling},
      {"prompt_2", &P::prompt_2},
      {"negative_prompt_2", &P::negative_prompt_2},
      {"original_size", &P::original_size},
      {"target_size", &P::target_size},
      {"crop_coords", &P::crop_coords},
      {"negative_original_size", &P::negative_original_size},
      {"negative_target_size", &P::negative_target_size},
      {"negative_crop_coords", &P::negative_crop_coords},
      {"aesthetic_score", &P::aesthetic_score},
      {"negative_aesthetic_score", &P::negative_aesthetic_score},
      {"refiner", &P::refiner},
      {"refiner_switch", &P::refiner_switch},
      {"vae", &P::vae},
      {"preview", &P::preview},
      {"preview_vae", &P::preview_vae},
      {"prompt_syntax", &P::prompt_syntax},
      {"guidance", &P::guidance},
      {"max_sequence_length", &P::max_sequence_length},
      {"prompt_3", &P::prompt_3},
      {"negative_prompt_3", &P::negative_prompt_3},
      {"skip_layers", &P::skip_layers},
      {"skip_layer_scale", &P::skip_layer_scale},
      {"skip_layer_start", &P::skip_layer_start},
      {"skip_layer_stop", &P::skip_layer_stop},
      {"frames", &P::frames},
      {"fps", &P::fps},
      {"strict", &P::strict},
  };
  return k;
}

Status bad(const std::string& m) { return Error{ErrorCode::kInvalidArgument, m}; }

}  // namespace

std::vector<std::string> params_json_fields() {
  std::vector<std::string> out;
  for (const auto& [name, m] : members()) out.push_back(name);
  return out;
}

std::string* params_string_field(GenerateParams& p, const std::string& name) {
  for (const auto& [n, m] : members())
    if (name == n)
      if (auto mp = std::get_if<std::string GenerateParams::*>(&m)) return &(p.**mp);
  return nullptr;
}

float* params_float_field(GenerateParams& p, const std::string& name) {
  for (const auto& [n, m] : members())
    if (name == n)
      if (auto mp = std::get_if<float GenerateParams::*>(&m)) return &(p.**mp);
  return nullptr;
}

Status params_from_json(const nlohmann::json& j, GenerateParams* p, bool strict) {
  if (!j.is_object()) return bad("the request body must be a JSON object");
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& key = it.key();
    const nlohmann::json& v = it.value();
    const Member* m = nullptr;
    for (const auto& [name, mem] : members())
      if (key == name) m = &mem;
    if (!m) {
      if (strict) return bad("unknown field '" + key + "'");
      continue;
    }
    if (v.is_null()) continue;  // null = keep the default
    Status st;
    std::visit(
        [&](auto mp) {
          using T = std::remove_reference_t<decltype(p->*mp)>;
          if constexpr (std::is_same_v<T, std::string>) {
            if (!v.is_string()) st = bad("field '" + key + "' must be a string");
            else p->*mp = v.get<std::string>();
          } else if constexpr (std::is_same_v<T, bool>) {
            if (!v.is_boolean()) st = bad("field '" + key + "' must be true or false");
            else p->*mp = v.get<bool>();
          } else if constexpr (std::is_same_v<T, float>) {
            if (!v.is_number()) st = bad("field '" + key + "' must be a number");
            else p->*mp = v.get<float>();
          } else {
            if (!v.is_number_integer()) {
              st = bad("field '" + key + "' must be an integer");
            } else if (std::is_same_v<T, int> && (v.get<int64_t>() > 2147483647LL || v.get<int64_t>() < -2147483648LL)) {
              st = bad("field '" + key + "' is out of range");
            } else {
              p->*mp = static_cast<T>(v.get<int64_t>());
            }
          }
        },
        *m);
    if (!st) return st;
  }
  return Status();
}

nlohmann::json params_to_json(const GenerateParams& p) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& nm : members()) std::visit([&](auto mp) { j[nm.first] = p.*mp; }, nm.second);
  return j;
}

}  // namespace vg
