#include "server/openai_request.h"

#include "core/error.h"
#include "core/params_json.h"
#include "io/image_decode.h"

namespace vg::server {

namespace {

// OpenAI model names mean "the server's default model".
std::string map_model(const std::string& m) {
  if (m.empty() || m.rfind("dall-e", 0) == 0 || m.rfind("gpt-image", 0) == 0 || m == "chatgpt-image-latest")
    return "";
  return m;
}

std::string string_field(const nlohmann::json& f, const char* k) {
  if (!f[k].is_string()) fail(ErrorCode::kInvalidArgument, std::string("'") + k + "' must be a string");
  return f[k].get<std::string>();
}

// The first non-empty file of the form under `key` (nullptr if none).
const std::string* form_file(const httplib::MultipartFormDataMap& form, const std::string& key) {
  auto it = form.find(key);
  return it == form.end() || it->second.content.empty() ? nullptr : &it->second.content;
}

}  // namespace

OpenAiRequest openai_request(const nlohmann::json& f, const FamilyOf& family_of) {
  OpenAiRequest r;
  GenerateParams& p = r.job.params;
  if (!f.is_object() || !f.contains("prompt") || !f["prompt"].is_string() ||
      f["prompt"].get<std::string>().empty())
    fail(ErrorCode::kInvalidArgument, "'prompt' is required");
  p.prompt = f["prompt"].get<std::string>();
  if (f.contains("model") && f["model"].is_string()) r.job.model = map_model(f["model"].get<std::string>());
  if (f.contains("n")) {
    p.batch_size = json_int(f["n"], "n");
    if (p.batch_size < 1 || p.batch_size > 10)
      fail(ErrorCode::kInvalidArgument, "'n' must be between 1 and 10");
  }
  if (f.contains("size") && f["size"].is_string())
    std::tie(p.width, p.height) = parse_size(f["size"].get<std::string>());
  if (f.contains("response_format") && f["response_format"].is_string()) {
    r.response_format = f["response_format"].get<std::string>();
    if (r.response_format != "url" && r.response_format != "b64_json")
      fail(ErrorCode::kInvalidArgument, "'response_format' must be url or b64_json");
  }
  // Which fields the client gave: the model's preset fills the rest (FLUX's
  // 28 steps, cfg 1, guidance 3.5; SD3's cfg 7).
  auto given = [&](const std::string& field) { p.set_fields.push_back(field); };
  given("prompt");
  if (f.contains("n")) given("batch_size");
  if (p.width) given("width"), given("height");
  const std::string family = family_of(r.job.model);  // unknown: reported at validation
  auto number = [&](const char* k) { return json_number(f[k], k); };
  // common extension fields at top level (Open WebUI, LocalAI, Lemonade)
  if (f.contains("negative_prompt") && f["negative_prompt"].is_string())
    p.negative_prompt = f["negative_prompt"].get<std::string>(), given("negative_prompt");
  if (f.contains("seed")) p.seed = json_int64(f["seed"], "seed"), given("seed");
  if (f.contains("steps")) p.steps = json_int(f["steps"], "steps"), given("steps");
  if (f.contains("cfg_scale")) p.cfg_scale = number("cfg_scale"), given("cfg_scale");
  // guidance_scale means what diffusers' pipeline of the family calls so:
  // FluxPipeline's is the distilled guidance, ZImagePipeline's g is our
  // cfg_scale - 1, the others' is CFG; true_cfg_scale (FLUX, Qwen-Image) is cfg_scale
  if (f.contains("guidance_scale")) {
    if (family == "flux")
      p.guidance = number("guidance_scale"), given("guidance");
    else if (family == "zimage")
      p.cfg_scale = 1.0f + number("guidance_scale"), given("cfg_scale");
    else
      p.cfg_scale = number("guidance_scale"), given("cfg_scale");
  }
  if (f.contains("true_cfg_scale")) p.cfg_scale = number("true_cfg_scale"), given("cfg_scale");
  if (f.contains("guidance")) p.guidance = number("guidance"), given("guidance");
  if (f.contains("strength")) p.strength = number("strength"), given("strength");
  if (f.contains("sampler")) p.sampler = string_field(f, "sampler"), given("sampler");
  if (f.contains("scheduler")) p.scheduler = string_field(f, "scheduler"), given("scheduler");
  if (f.contains("extra") && f["extra"].is_object()) {  // the native schema, strictly
    Status st = params_from_json(f["extra"], &p, true);
    if (!st) throw VgException(st.error().code, st.error().message);
    for (auto it = f["extra"].begin(); it != f["extra"].end(); ++it) given(it.key());
  }
  return r;
}

OpenAiRequest openai_edit_request(const httplib::MultipartFormDataMap& form, const FamilyOf& family_of) {
  nlohmann::json fields = nlohmann::json::object();
  for (const auto& [name, file] : form)
    if (file.filename.empty()) {  // plain form fields: text, as JSON would carry it
      if (!valid_utf8(file.content) || !valid_utf8(name))
        fail(ErrorCode::kInvalidArgument,
             "form field '" + (valid_utf8(name) ? name : "?") + "' is not UTF-8 text");
      fields[name] = file.content;
    }
  OpenAiRequest r = openai_request(fields, family_of);
  const std::string* image = form_file(form, form.count("image[]") ? "image[]" : "image");
  if (!image) fail(ErrorCode::kInvalidArgument, "'image' is required");
  r.job.init_image = decode_image(*image, "image");
  r.job.params.init_image = "(upload)";
  if (const std::string* mask = form_file(form, "mask")) {
    // OpenAI masks mark the area to edit with transparency; the engine reads
    // a mask with transparency that way (and says so in the warnings).
    r.job.mask = decode_image(*mask, "mask");
    r.job.params.mask = "(upload)";
    if (!fields.contains("strength")) r.job.params.strength = 1.0f;
  }
  return r;
}

}  // namespace vg::server
