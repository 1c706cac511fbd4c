// OpenAI-compatible image endpoints: /v1/images/generations (JSON) and
// /v1/images/edits (multipart; OpenAI's transparent-means-edit mask).
#include <chrono>

#include "core/error.h"
#include "server/context.h"
#include "server/http_util.h"
#include "server/openai_request.h"

namespace vg::server {

namespace {

nlohmann::json images_response(Context& ctx, Job& j, const std::string& format, const std::string& host) {
  std::lock_guard<std::mutex> lock(j.mu);
  if (j.status != JobStatus::kCompleted) return error_body(j.error);
  nlohmann::json data = nlohmann::json::array();
  for (const auto& im : j.images) {
    if (format == "url") {
      data.push_back({{"url", "http://" + host + "/v1/artifacts/" + im.artifact_id}});
    } else {
      auto png = ctx.jobs->artifact(im.artifact_id);
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
    run(ctx, req, res, openai_request(parse_json_body(req.body), family_lookup(ctx)));
  });
  s.Post("/v1/images/edits", [&ctx](const httplib::Request& req, httplib::Response& res) {
    if (!req.is_multipart_form_data())
      return send_error(res, {ErrorCode::kInvalidArgument, "'image' must be sent as multipart/form-data"});
    run(ctx, req, res, openai_edit_request(req.files, family_lookup(ctx)));
  });
}

}  // namespace vg::server
