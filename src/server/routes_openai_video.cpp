// OpenAI's Videos API shape for local video models (Wan): POST /v1/videos
// (multipart or JSON: prompt, model, seconds, size, input_reference for
// image-to-video, plus the native knobs), GET /v1/videos[/{id}], GET
// /v1/videos/{id}/content (the MP4), DELETE /v1/videos/{id} (cancels). A
// video id is its job id: the native jobs API shows the same job.
#include <chrono>
#include <cmath>

#include "core/error.h"
#include "core/params_json.h"
#include "io/image_decode.h"
#include "server/context.h"
#include "server/http_util.h"

namespace vg::server {

namespace {

JobRequest video_request(Context& ctx, const nlohmann::json& f) {
  JobRequest r;
  GenerateParams& p = r.params;
  if (!f.contains("prompt") || !f["prompt"].is_string() || f["prompt"].get<std::string>().empty())
    fail(ErrorCode::kInvalidArgument, "'prompt' is required");
  p.prompt = f["prompt"].get<std::string>();
  auto given = [&](const char* field) { p.set_fields.push_back(field); };
  given("prompt");
  if (f.contains("model") && f["model"].is_string() && f["model"].get<std::string>().rfind("sora", 0) != 0)
    r.model = f["model"].get<std::string>();
  if (f.contains("size") && f["size"].is_string()) {
    std::tie(p.width, p.height) = parse_size(f["size"].get<std::string>());
    if (p.width) given("width"), given("height");
  }
  if (f.contains("fps")) p.fps = json_number(f["fps"], "fps"), given("fps");
  if (f.contains("frames")) p.frames = json_int(f["frames"], "frames"), given("frames");
  if (f.contains("seconds") && !f.contains("frames")) {  // seconds at the clip's fps, as 4k+1 frames
    const float sec = json_number(f["seconds"], "seconds");
    if (!(sec > 0 && sec <= 60)) fail(ErrorCode::kInvalidArgument, "'seconds' must be between 0 and 60");
    const float fps = p.fps > 0 ? p.fps : 24.0f;
    p.frames = static_cast<int>(std::lround(sec * fps / 4.0f)) * 4 + 1;
    given("frames");
  }
  if (f.contains("negative_prompt") && f["negative_prompt"].is_string()) p.negative_prompt = f["negative_prompt"], given("negative_prompt");
  if (f.contains("seed")) p.seed = json_int(f["seed"], "seed"), given("seed");
  if (f.contains("steps")) p.steps = json_int(f["steps"], "steps"), given("steps");
  for (const char* k : {"cfg_scale", "guidance_scale"})  // WanPipeline's guidance_scale is our cfg_scale
    if (f.contains(k)) p.cfg_scale = json_number(f[k], k), given("cfg_scale");
  if (f.contains("video_format") && f["video_format"].is_string()) r.video_format = f["video_format"];
  if (f.contains("extra") && f["extra"].is_object()) {  // the native schema, strictly
    Status st = params_from_json(f["extra"], &p, true);
    if (!st) throw VgException(st.error().code, st.error().message);
    for (auto it = f["extra"].begin(); it != f["extra"].end(); ++it) given(it.key().c_str());
  }
  if (r.video_format != "mp4" && r.video_format != "webm" && r.video_format != "webp" && r.video_format != "gif")
    fail(ErrorCode::kInvalidArgument, "'video_format' must be mp4, webm, webp or gif");
  (void)ctx;
  return r;
}

// The OpenAI Video object of a job.
nlohmann::json video_json(Context& ctx, Job& j) {
  const int pos = ctx.jobs->queue_position(j);
  std::lock_guard<std::mutex> lock(j.mu);
  const nlohmann::json native = j.to_json_locked(pos);
  std::string status = "queued";
  if (j.status == JobStatus::kRunning) status = "in_progress";
  if (j.status == JobStatus::kCompleted) status = "completed";
  if (j.status == JobStatus::kFailed || j.status == JobStatus::kCancelled) status = "failed";
  const GenerateParams& p = j.req.params;
  const double fps = p.fps > 0 ? p.fps : 24.0;
  nlohmann::json v = {{"id", j.id},
                      {"object", "video"},
                      {"status", status},
                      {"progress", static_cast<int>(std::lround(100.0 * native.value("progress", 0.0)))},
                      {"created_at", std::chrono::duration_cast<std::chrono::seconds>(j.created.time_since_epoch()).count()},
                      {"completed_at", nullptr},
                      {"expires_at", nullptr},
                      {"model", native["model"]},
                      {"prompt", p.prompt},
                      {"seconds", p.frames > 0 ? std::to_string(static_cast<int>(std::lround((p.frames - 1) / fps))) : ""},
                      {"size", p.width ? std::to_string(p.width) + "x" + std::to_string(p.height) : ""},
                      {"remixed_from_video_id", nullptr},
                      {"error", nullptr}};
  if (j.status == JobStatus::kCompleted && !j.images.empty()) {
    const JobImage& out = j.images.front();
    v["size"] = std::to_string(out.width) + "x" + std::to_string(out.height);
    v["seconds"] = std::to_string(static_cast<int>(std::lround(out.frames / std::max(out.fps, 1.0))));
    v["completed_at"] = std::chrono::duration_cast<std::chrono::seconds>(j.finished.time_since_epoch()).count();
  }
  if (native.contains("error")) v["error"] = native["error"];
  return v;
}

}  // namespace

void add_openai_video_routes(Router& s, Context& ctx) {
  s.Post("/v1/videos", [&ctx](const httplib::Request& req, httplib::Response& res) {
    nlohmann::json fields = nlohmann::json::object();
    std::optional<Image> ref;
    if (req.is_multipart_form_data()) {
      for (const auto& [name, file] : req.files)
        if (file.filename.empty() && name != "input_reference") {
          if (!valid_utf8(file.content))
            fail(ErrorCode::kInvalidArgument, "form field '" + name + "' is not UTF-8 text; send text fields as UTF-8");
          fields[name] = file.content;
        }
      if (req.has_file("input_reference") && !req.get_file_value("input_reference").content.empty())
        ref = decode_image(req.get_file_value("input_reference").content, "input_reference");
    } else {
      fields = parse_json_body(req.body);
      if (fields.contains("input_reference") && fields["input_reference"].is_string())
        ref = decode_image_field(fields["input_reference"].get<std::string>(), "input_reference");
    }
    JobRequest r = video_request(ctx, fields);
    if (ref) {
      r.init_image = std::move(*ref);
      r.params.init_image = "(upload)";
    }
    r.params.task = r.init_image ? "image_to_video" : "text_to_video";
    auto job = validate_and_submit(ctx, std::move(r));
    if (!job) return send_error(res, job.error());
    send_json(res, video_json(ctx, **job));
  });
  s.Get("/v1/videos", [&ctx](const httplib::Request&, httplib::Response& res) {
    nlohmann::json data = nlohmann::json::array();
    for (const auto& j : ctx.jobs->list())
      if (j->req.params.task == "text_to_video" || j->req.params.task == "image_to_video") data.push_back(video_json(ctx, *j));
    send_json(res, {{"object", "list"}, {"data", data}});
  });
  s.Get(R"(/v1/videos/([A-Za-z0-9_]+))", [&ctx](const httplib::Request& req, httplib::Response& res) {
    auto j = ctx.jobs->get(req.matches[1]);
    if (!j) return send_error(res, {ErrorCode::kFileNotFound, "no video '" + std::string(req.matches[1]) + "'"});
    send_json(res, video_json(ctx, *j));
  });
  s.Delete(R"(/v1/videos/([A-Za-z0-9_]+))", [&ctx](const httplib::Request& req, httplib::Response& res) {
    if (!ctx.jobs->cancel(req.matches[1]))
      return send_error(res, {ErrorCode::kFileNotFound, "no video '" + std::string(req.matches[1]) + "'"});
    send_json(res, {{"id", req.matches[1]}, {"object", "video.deleted"}, {"deleted", true}});
  });
  s.Get(R"(/v1/videos/([A-Za-z0-9_]+)/content)", [&ctx](const httplib::Request& req, httplib::Response& res) {
    auto j = ctx.jobs->get(req.matches[1]);
    if (!j) return send_error(res, {ErrorCode::kFileNotFound, "no video '" + std::string(req.matches[1]) + "'"});
    const std::string variant = req.has_param("variant") ? req.get_param_value("variant") : "video";
    if (variant != "video")
      return send_error(res, {ErrorCode::kInvalidArgument, "variant '" + variant + "' is not kept; ask for variant=video"});
    std::string id;
    {
      std::lock_guard<std::mutex> lock(j->mu);
      if (j->status != JobStatus::kCompleted || j->images.empty())
        return send_error(res, {ErrorCode::kInvalidArgument, "video '" + j->id + "' is " + job_status_name(j->status) +
                                                                 "; poll GET /v1/videos/" + j->id + " until it is completed"});
      id = j->images.front().artifact_id;
    }
    auto bytes = ctx.jobs->artifact(id);
    if (!bytes) return send_error(res, {ErrorCode::kFileNotFound, "the video file of '" + j->id + "' is no longer kept"});
    res.set_content(*bytes, sniff_mime(*bytes));
  });
}

}  // namespace vg::server
