// OpenAI-compatible image endpoints: /v1/images/generations (JSON) and
// /v1/images/edits (multipart; OpenAI's transparent-means-edit mask).
#include <chrono>

#include "core/error.h"
#include "core/params_json.h"
#include "io/image_decode.h"
#include "server/context.h"
#include "server/http_util.h"

namespace vg::server {

namespace {

// OpenAI model names mean "the server's default model".
std::string map_model(Context& ctx, const std::string& m) {
  if (m.empty() || m.rfind("dall-e", 0) == 0 || m.rfind("gpt-image", 0) == 0 || m == "chatgpt-image-latest") return "";
  (void)ctx;
  return m;
}

// Fields shared by generations and edits; `fields` holds JSON values or form strings.
struct OpenAiRequest {
  JobRequest job;
  std::string response_format = "b64_json";
};

OpenAiRequest from_fields(Context& ctx, const nlohmann::json& f) {
  OpenAiRequest r;
  GenerateParams& p = r.job.params;
  if (!f.contains("prompt") || !f["prompt"].is_string() || f["prompt"].get<std::string>().empty())
    fail(ErrorCode::kInvalidArgument, "'prompt' is required");
  p.prompt = f["prompt"].get<std::string>();
  if (f.contains("model") && f["model"].is_string()) r.job.model = map_model(ctx, f["model"].get<std::string>());
  if (f.contains("n")) {
    p.batch_size = json_int(f["n"], "n");
    if (p.batch_size < 1 || p.batch_size > 10) fail(ErrorCode::kInvalidArgument, "'n' must be between 1 and 10");
  }
  if (f.contains("size") && f["size"].is_string()) std::tie(p.width, p.height) = parse_size(f["size"].get<std::string>());
  if (f.contains("response_format") && f["response_format"].is_string()) {
    r.response_format = f["response_format"].get<std::string>();
    if (r.response_format != "url" && r.response_format != "b64_json")
      fail(ErrorCode::kInvalidArgument, "'response_format' must be url or b64_json");
  }
  // Which fields the client gave: the model's preset fills the rest (FLUX's
  // 28 steps, cfg 1, guidance 3.5; SD3's cfg 7).
  auto given = [&](const char* field) { p.set_fields.push_back(field); };
  given("prompt");
  if (f.contains("n")) given("batch_size");
  if (p.width) given("width"), given("height");
  std::string family;
  if (auto e = ctx.models.acquire(r.job.model)) family = (*e)->info().family;  // unknown: reported at validation
  auto number = [&](const char* k) { return f[k].is_string() ? std::stof(f[k].get<std::string>()) : f[k].get<float>(); };
  // common extension fields at top level (Open WebUI, LocalAI, Lemonade)
  if (f.contains("negative_prompt") && f["negative_prompt"].is_string()) p.negative_prompt = f["negative_prompt"], given("negative_prompt");
  if (f.contains("seed")) p.seed = json_int(f["seed"], "seed"), given("seed");
  if (f.contains("steps")) p.steps = json_int(f["steps"], "steps"), given("steps");
  if (f.contains("cfg_scale")) p.cfg_scale = number("cfg_scale"), given("cfg_scale");
  // guidance_scale means what diffusers' pipeline of the family calls so:
  // FluxPipeline's is the distilled guidance, ZImagePipeline's g is our
  // cfg_scale - 1, the others' is CFG; true_cfg_scale (FLUX, Qwen-Image) is cfg_scale
  if (f.contains("guidance_scale")) {
    if (family == "flux") p.guidance = number("guidance_scale"), given("guidance");
    else if (family == "zimage") p.cfg_scale = 1.0f + number("guidance_scale"), given("cfg_scale");
    else p.cfg_scale = number("guidance_scale"), given("cfg_scale");
  }
  if (f.contains("true_cfg_scale")) p.cfg_scale = number("true_cfg_scale"), given("cfg_scale");
  if (f.contains("guidance")) p.guidance = number("guidance"), given("guidance");
  if (f.contains("strength")) p.strength = number("strength"), given("strength");
  for (const char* k : {"sampler", "scheduler"})
    if (f.contains(k) && f[k].is_string()) (std::string(k) == "sampler" ? p.sampler : p.scheduler) = f[k], given(k);
  if (f.contains("extra") && f["extra"].is_object()) {  // the native schema, strictly
    Status st = params_from_json(f["extra"], &p, true);
    if (!st) throw VgException(st.error().code, st.error().message);
    for (auto it = f["extra"].begin(); it != f["extra"].end(); ++it) given(it.key().c_str());
  }
  return r;
}

nlohmann::json images_response(Context& ctx, Job& j, const std::string& format, const std::string& host) {
  std::lock_guard<std::mutex> lock(j.mu);
  if (j.status != JobStatus::kCompleted) return error_body(j.error);
  nlohmann::json data = nlohmann::json::array();
  for (const auto& im : j.images) {
    if (format == "url") {
      data.push_back({{"url", "http://" + host + "/v1/artifacts/" + im.artifact_id}});
    } else {
      auto png = ctx.jobs.artifact(im.artifact_id);
      data.push_back({{"b64_json", png ? base64_encode(*png) : ""}});
    }
  }
  const auto now = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch());
  nlohmann::json out = {{"created", now.count()}, {"data", data}, {"output_format", "png"}};
  if (!j.images.empty()) out["size"] = std::to_string(j.images[0].width) + "x" + std::to_string(j.images[0].height);
  return out;
}

void run(Context& ctx, const httplib::Request& req, httplib::Response& res, OpenAiRequest r) {
  const std::string format = r.response_format;
  const std::string host = req.get_header_value("Host");
  auto job = validate_and_submit(ctx, std::move(r.job));
  if (!job) return send_error(res, job.error());
  respond_when_done(ctx, res, *job, [&ctx, format, host](Job& j) { return images_response(ctx, j, format, host); });
}

}  // namespace

void add_openai_routes(Router& s, Context& ctx) {
  s.Post("/v1/images/generations", [&ctx](const httplib::Request& req, httplib::Response& res) {
    run(ctx, req, res, from_fields(ctx, parse_json_body(req.body)));
  });
  s.Post("/v1/images/edits", [&ctx](const httplib::Request& req, httplib::Response& res) {
    if (!req.is_multipart_form_data())
      return send_error(res, {ErrorCode::kInvalidArgument, "'image' must be sent as multipart/form-data"});
    nlohmann::json fields = nlohmann::json::object();
    for (const auto& [name, file] : req.files)
      if (file.filename.empty()) fields[name] = file.content;  // plain form fields
    OpenAiRequest r = from_fields(ctx, fields);
    const char* image_key = req.has_file("image[]") ? "image[]" : "image";
    if (!req.has_file(image_key) || req.get_file_value(image_key).content.empty())
      return send_error(res, {ErrorCode::kInvalidArgument, "'image' is required"});
    r.job.init_image = decode_image(req.get_file_value(image_key).content, "image");
    r.job.params.init_image = "(upload)";
    if (req.has_file("mask") && !req.get_file_value("mask").content.empty()) {
      // OpenAI masks mark the area to edit with transparency; the engine reads
      // a mask with transparency that way (and says so in the warnings).
      r.job.mask = decode_image(req.get_file_value("mask").content, "mask");
      r.job.params.mask = "(upload)";
      if (!fields.contains("strength")) r.job.params.strength = 1.0f;
    }
    run(ctx, req, res, std::move(r));
  });
}

}  // namespace vg::server
