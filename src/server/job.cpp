#include "server/job.h"

#include "core/error.h"
#include "core/params_json.h"
#include "io/image_io.h"
#include "server/http_util.h"

namespace vg::server {

namespace {

ErrorCode code_named(const std::string& name) {
  for (int c = 0; c <= static_cast<int>(ErrorCode::kQueueUnavailable); ++c)
    if (name == error_code_name(static_cast<ErrorCode>(c))) return static_cast<ErrorCode>(c);
  return ErrorCode::kInternal;
}

}  // namespace

const char* job_status_name(JobStatus s) {
  switch (s) {
    case JobStatus::kQueued: return "queued";
    case JobStatus::kLoading: return "loading";
    case JobStatus::kRunning: return "running";
    case JobStatus::kCompleted: return "completed";
    case JobStatus::kFailed: return "failed";
    case JobStatus::kCancelled: return "cancelled";
  }
  return "unknown";
}

bool job_finished(JobStatus s) {
  return s == JobStatus::kCompleted || s == JobStatus::kFailed || s == JobStatus::kCancelled;
}

nlohmann::json Job::to_json_locked(int queue_position) const {
  nlohmann::json j = {{"id", id},
                      {"status", job_status_name(status)},
                      {"phase", phase},
                      {"step", step},
                      {"steps", steps},
                      {"progress", steps > 0 ? static_cast<double>(step) / steps : (status == JobStatus::kCompleted ? 1.0 : 0.0)},
                      {"queue_position", queue_position},
                      {"created", std::chrono::duration_cast<std::chrono::seconds>(created.time_since_epoch()).count()},
                      {"model", model_used.empty() ? req.model : model_used}};
  j["eta_s"] = eta_s >= 0 ? nlohmann::json(eta_s) : nlohmann::json(nullptr);
  if (status == JobStatus::kCompleted) {
    nlohmann::json imgs = nlohmann::json::array(), vids = nlohmann::json::array();
    for (const auto& im : images) {
      nlohmann::json o = {{"id", im.artifact_id},
                          {"uri", "/v1/artifacts/" + im.artifact_id},
                          {"mime", im.mime},
                          {"width", im.width},
                          {"height", im.height},
                          {"seed", im.seed},
                          {"infotext", im.infotext}};
      if (!im.url.empty()) o["url"] = im.url;
      if (im.frames > 0) {
        o["frames"] = im.frames;
        o["fps"] = im.fps;
        vids.push_back(std::move(o));
      } else {
        imgs.push_back(std::move(o));
      }
    }
    j["result"] = {{"images", imgs},
                   {"videos", vids},
                   {"warnings", warnings},
                   {"sampler_in", sampling.sampler_in},
                   {"sampler_effective", sampling.sampler_effective},
                   {"scheduler_in", sampling.scheduler_in},
                   {"scheduler_effective", sampling.scheduler_effective},
                   {"elapsed_s", elapsed_s},
                   {"applied_preset_patch", nlohmann::json::parse(applied_preset_patch, nullptr, false)}};
  }
  if (!worker.empty()) j["worker"] = worker, j["attempts"] = attempts;
  if (status == JobStatus::kFailed || status == JobStatus::kCancelled)
    j["error"] = {{"code", error_code_name(error.code)}, {"message", error.message}};
  return j;
}

void Job::push_event_locked(const std::string& type, nlohmann::json data) {
  events.push_back({static_cast<int>(events.size()), type, std::move(data)});
  if (on_event) on_event(events.back());
  cv.notify_all();
}

nlohmann::json job_request_to_json(const JobRequest& r) {
  nlohmann::json j = {{"params", params_to_json(r.params)}, {"set_fields", r.params.set_fields}, {"model", r.model},
                      {"video_format", r.video_format}};
  if (r.init_image) j["init_image"] = base64_encode(encode_png(*r.init_image, ""));
  if (r.mask) j["mask"] = base64_encode(encode_png(*r.mask, ""));
  return j;
}

JobRequest job_request_from_queue(const nlohmann::json& j) {
  if (!j.is_object() || !j.contains("params")) fail(ErrorCode::kCorruptFile, "a queued job's request is not a JSON object with 'params'");
  JobRequest r;
  Status st = params_from_json(j.at("params"), &r.params, false);
  if (!st) throw VgException(st.error().code, st.error().message);
  r.params.set_fields = j.value("set_fields", std::vector<std::string>{});
  r.model = j.value("model", "");
  r.video_format = j.value("video_format", "mp4");
  if (j.contains("init_image")) r.init_image = decode_image_field(j["init_image"].get<std::string>(), "init_image");
  if (j.contains("mask")) r.mask = decode_image_field(j["mask"].get<std::string>(), "mask");
  return r;
}

void job_apply_json_locked(Job& j, const nlohmann::json& s) {
  static const std::pair<const char*, JobStatus> kNames[] = {
      {"queued", JobStatus::kQueued},       {"loading", JobStatus::kLoading}, {"running", JobStatus::kRunning},
      {"completed", JobStatus::kCompleted}, {"failed", JobStatus::kFailed},   {"cancelled", JobStatus::kCancelled}};
  const std::string status = s.value("status", "");
  for (const auto& [name, st] : kNames)
    if (status == name) j.status = st;
  j.phase = s.value("phase", j.phase);
  j.step = s.value("step", j.step);
  j.steps = s.value("steps", j.steps);
  if (s.contains("eta_s") && s["eta_s"].is_number()) j.eta_s = s["eta_s"].get<double>();
  if (s.contains("model") && s["model"].is_string()) j.model_used = s["model"].get<std::string>();
  j.worker = s.value("worker", j.worker);
  j.attempts = s.value("attempts", j.attempts);
  if (s.contains("error") && s["error"].is_object()) {
    const auto& e = s["error"];
    j.error = {code_named(e.value("code", "internal")), e.value("message", "")};
  }
  if (!s.contains("result") || !s["result"].is_object()) return;
  const auto& r = s["result"];
  j.images.clear();
  for (const char* kind : {"images", "videos"})
    for (const auto& o : r.value(kind, nlohmann::json::array())) {
      JobImage im;
      im.artifact_id = o.value("id", "");
      im.width = o.value("width", 0), im.height = o.value("height", 0);
      im.seed = o.value("seed", uint64_t{0});
      im.infotext = o.value("infotext", "");
      im.mime = o.value("mime", "image/png");
      im.frames = o.value("frames", 0);
      im.fps = o.value("fps", 0.0);
      im.url = o.value("url", "");
      j.images.push_back(std::move(im));
    }
  j.warnings = r.value("warnings", std::vector<std::string>{});
  j.sampling.sampler_in = r.value("sampler_in", "");
  j.sampling.sampler_effective = r.value("sampler_effective", "");
  j.sampling.scheduler_in = r.value("scheduler_in", "");
  j.sampling.scheduler_effective = r.value("scheduler_effective", "");
  j.elapsed_s = r.value("elapsed_s", 0.0);
  j.applied_preset_patch = r.contains("applied_preset_patch") ? r["applied_preset_patch"].dump() : "{}";
}

}  // namespace vg::server
