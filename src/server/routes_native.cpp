// Native API: capabilities, models, system, jobs (+SSE, cancel), /generate,
// artifacts, metrics.
#include <fstream>
#include <sstream>

#include "backend/cpu/dnnl_context.h"
#include "core/error.h"
#include "core/params_json.h"
#include "lora/lora_manager.h"
#include "registry/registry.h"
#include "sampling/sampler.h"
#include "sampling/sigma_schedules.h"
#include "server/context.h"
#include "server/http_util.h"
#include "server/lora_list.h"
#include "server/model_details.h"

namespace vg::server {

namespace {

nlohmann::json models_list(Context& ctx) {
  nlohmann::json data = nlohmann::json::array();
  for (const auto& m : ctx.models.list())
    data.push_back({{"id", m.id}, {"object", "model"}, {"created", 0}, {"owned_by", "visiongen"}});
  return {{"object", "list"}, {"data", data}};
}

nlohmann::json engines_json() {
  nlohmann::json a = nlohmann::json::array();
  for (const auto& e : engines()) a.push_back(engine_json(e));
  return a;
}

// Native job request: the GenerateParams fields (strict) plus model and
// base64 images.
JobRequest job_request_from_json(const nlohmann::json& body) {
  if (!body.is_object()) fail(ErrorCode::kInvalidArgument, "the request body must be a JSON object");
  JobRequest r;
  nlohmann::json p = body;
  if (p.contains("engine")) {  // this build has one engine
    if (!p["engine"].is_string() || (p["engine"] != "cpu" && p["engine"] != "auto"))
      fail(ErrorCode::kInvalidArgument, "field 'engine' must be \"cpu\" or \"auto\" in this build (see GET /engines)");
    p.erase("engine");
  }
  if (p.contains("model")) {
    if (!p["model"].is_string()) fail(ErrorCode::kInvalidArgument, "field 'model' must be a string");
    r.model = p["model"].get<std::string>();
    p.erase("model");
  }
  if (p.contains("video_format")) {
    const auto& f = p["video_format"];
    if (!f.is_string() || (f != "mp4" && f != "webm" && f != "webp" && f != "gif"))
      fail(ErrorCode::kInvalidArgument, "field 'video_format' must be \"mp4\", \"webm\", \"webp\" or \"gif\"");
    r.video_format = f.get<std::string>();
    p.erase("video_format");
  }
  for (const char* f : {"init_image", "mask"}) {
    if (!p.contains(f) || p[f].is_null()) continue;
    if (!p[f].is_string()) fail(ErrorCode::kInvalidArgument, std::string("field '") + f + "' must be base64 image data");
    Image im = decode_image_field(p[f].get<std::string>(), f);
    (std::string(f) == "init_image" ? r.init_image : r.mask) = std::move(im);
    p.erase(f);
  }
  // loras may also be [{"name", "weight"}, ...]: the engine takes "name:weight,...".
  if (p.contains("loras") && !p["loras"].is_string()) {
    const std::string l = loras_to_string(p["loras"]);
    if (l.empty()) p.erase("loras");
    else p["loras"] = l;
  }
  Status st = params_from_json(p, &r.params, true);
  for (auto it = p.begin(); it != p.end(); ++it) r.params.set_fields.push_back(it.key());  // presets fill the rest
  if (!st) throw VgException(st.error().code, st.error().message);
  // the engine reads images from ImageInputs, never from server-side paths
  if (r.init_image) r.params.init_image = "(upload)";
  if (r.mask) r.params.mask = "(upload)";
  return r;
}

// The client's Idempotency-Key header: printable ASCII, at most 128 bytes.
std::string idempotency_key(const httplib::Request& req) {
  const std::string k = req.get_header_value("Idempotency-Key");
  if (k.size() > 128) fail(ErrorCode::kInvalidArgument, "the Idempotency-Key header is longer than 128 characters");
  for (char c : k)
    if (c < 0x21 || c > 0x7e) fail(ErrorCode::kInvalidArgument, "the Idempotency-Key header must be printable ASCII without spaces");
  return k;
}

nlohmann::json sync_body(Context& ctx, Job& j) {
  std::lock_guard<std::mutex> lock(j.mu);
  if (j.status != JobStatus::kCompleted) return error_body(j.error);
  nlohmann::json imgs = nlohmann::json::array();
  for (const auto& im : j.images) {
    auto png = ctx.jobs->artifact(im.artifact_id);
    imgs.push_back({{"id", im.artifact_id}, {"b64_json", png ? base64_encode(*png) : ""}, {"seed", im.seed},
                    {"width", im.width}, {"height", im.height}, {"infotext", im.infotext}});
  }
  nlohmann::json out = j.to_json_locked(0);
  out["engine"] = "cpu";
  out["images"] = imgs;
  return out;
}

void sse_events(Context& ctx, httplib::Response& res, std::shared_ptr<Job> job) {
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider("text/event-stream", [job](size_t, httplib::DataSink& sink) {
    size_t next = 0;
    for (;;) {
      std::vector<JobEvent> batch;
      bool done;
      {
        std::unique_lock<std::mutex> lock(job->mu);
        job->cv.wait_for(lock, std::chrono::milliseconds(500), [&] { return job->events.size() > next; });
        batch.assign(job->events.begin() + static_cast<long>(next), job->events.end());
        next = job->events.size();
        done = job_finished(job->status) && next == job->events.size();
      }
      for (const auto& e : batch) {
        const std::string msg = "id: " + std::to_string(e.seq) + "\nevent: " + e.type + "\ndata: " + json_text(e.data) + "\n\n";
        if (!sink.write(msg.data(), msg.size())) return false;
      }
      if (batch.empty() && !sink.write(": keepalive\n\n", 13)) return false;
      if (done) {
        sink.done();
        return true;
      }
    }
  });
  (void)ctx;
}

}  // namespace

void add_native_routes(Router& s, Context& ctx) {
  s.Get("/health", [](const httplib::Request&, httplib::Response& res) { send_json(res, {{"status", "ok"}}); });
  s.Get("/healthz", [](const httplib::Request&, httplib::Response& res) { send_json(res, {{"status", "ok"}}); });
  // Ready to take jobs: with --queue, Redis answers.
  s.Get("/readyz", [&ctx](const httplib::Request&, httplib::Response& res) {
    if (ctx.jobs->ready()) return send_json(res, {{"status", "ready"}});
    send_error(res, {ErrorCode::kQueueUnavailable, "the shared queue (--queue) does not answer; check that Redis runs"});
  });
  s.Get("/v1/capabilities", [&ctx](const httplib::Request&, httplib::Response& res) {
    nlohmann::json samplers = nlohmann::json::array();
    for (const auto& si : sampler_table()) samplers.push_back({{"id", si.id}, {"a1111", si.a1111}, {"aliases", si.aliases}});
    nlohmann::json models = nlohmann::json::array(), details = nlohmann::json::object();
    for (const auto& m : ctx.models.list()) {
      models.push_back(m.id);
      if (auto e = ctx.models.peek(m.id)) details[m.id] = model_details(*e);  // loaded ones only: never loads
    }
    send_json(res, {{"version", version()},
                    {"tasks",
                     {{"text_to_image", {{"supported", true}}},
                      {"image_to_image", {{"supported", true}}},
                      {"inpaint", {{"supported", true}}},
                      {"text_to_video", {{"supported", true}, {"families", {"wan-2-2"}}}},
                      {"image_to_video", {{"supported", true}, {"families", {"wan-2-2"}}}},
                      {"upscale", {{"supported", false}, {"reason", "no upscaler engine in this build yet"}}}}},
                    {"engines", engines_json()},
                    {"models", models},
                    {"default_model", ctx.models.default_id()},
                    {"model_details", details},
                    {"samplers", samplers},
                    {"schedulers", schedule_names()},
                    {"params", params_json_fields()},
                    {"limits", {{"max_width", 4096}, {"max_height", 4096}, {"max_steps", 1000}, {"max_batch", 16},
                                {"max_queue", ctx.opts.max_queue}}}});
  });
  s.Get("/v1/loras", [&ctx](const httplib::Request&, httplib::Response& res) {
    send_json(res, list_loras(lora_folders(ctx.opts.lora_dirs)));
  });
  s.Get("/engines", [](const httplib::Request&, httplib::Response& res) { send_json(res, engines_json()); });
  s.Get("/v1/models", [&ctx](const httplib::Request&, httplib::Response& res) { send_json(res, models_list(ctx)); });
  s.Post(R"(/v1/models/([^/]+)/(load|unload))", [&ctx](const httplib::Request& req, httplib::Response& res) {
    const std::string id = req.matches[1], op = req.matches[2];
    if (op == "unload") {
      ctx.models.unload(id);
      return send_json(res, {{"id", id}, {"loaded", false}});
    }
    auto e = ctx.models.acquire(id);
    if (!e) return send_error(res, e.error());
    nlohmann::json out = model_details(**e);
    out["id"] = id;
    out["loaded"] = true;
    send_json(res, out);
  });
  // OpenAI's model object, plus family/controls/defaults when it is loaded.
  s.Get(R"(/v1/models/([^/]+))", [&ctx](const httplib::Request& req, httplib::Response& res) {
    const std::string id = req.matches[1];
    auto entry = guard([&] { return ctx.models.resolve(id); });
    if (!entry) return send_error(res, entry.error());
    nlohmann::json out = {{"id", entry->id}, {"object", "model"}, {"created", 0}, {"owned_by", "visiongen"}, {"loaded", false}};
    if (auto e = ctx.models.peek(entry->id)) {
      out.update(model_details(*e));
      out["loaded"] = true;
    }
    send_json(res, out);
  });
  s.Get("/v1/system", [&ctx](const httplib::Request&, httplib::Response& res) {
    long pages = sysconf(_SC_PHYS_PAGES), avail = sysconf(_SC_AVPHYS_PAGES), psz = sysconf(_SC_PAGE_SIZE);
    const size_t cores = physical_core_cpus().size();
    send_json(res, {{"version", version()},
                    {"devices", {{{"type", "cpu"}, {"threads", std::thread::hardware_concurrency()},
                                  {"physical_cores_allowed", cores},
                                  {"compute_threads", ctx.opts.threads > 0 ? static_cast<size_t>(ctx.opts.threads) : cores}}}},
                    {"memory", {{"total_bytes", static_cast<double>(pages) * psz}, {"available_bytes", static_cast<double>(avail) * psz}}},
                    {"loaded_models", ctx.models.loaded()},
                    {"features", {{"cuda", false}, {"video", true}, {"hub", false}}}});
  });
  s.Post("/v1/jobs", [&ctx](const httplib::Request& req, httplib::Response& res) {
    JobRequest jr = job_request_from_json(parse_json_body(req.body));
    jr.idempotency_key = idempotency_key(req);
    auto job = validate_and_submit(ctx, std::move(jr));
    if (!job) return send_error(res, job.error());
    const int pos = ctx.jobs->queue_position(**job);
    std::lock_guard<std::mutex> lock((*job)->mu);
    send_json(res, (*job)->to_json_locked(pos), 202);
  });
  s.Get("/v1/jobs", [&ctx](const httplib::Request& req, httplib::Response& res) {
    const std::string want = req.get_param_value("status");
    nlohmann::json data = nlohmann::json::array();
    for (const auto& j : ctx.jobs->list()) {
      const int pos = ctx.jobs->queue_position(*j);
      std::lock_guard<std::mutex> lock(j->mu);
      if (want.empty() || want == job_status_name(j->status)) data.push_back(j->to_json_locked(pos));
    }
    send_json(res, {{"object", "list"}, {"data", data}});
  });
  s.Get(R"(/v1/jobs/([A-Za-z0-9_]+))", [&ctx](const httplib::Request& req, httplib::Response& res) {
    auto j = ctx.jobs->get(req.matches[1]);
    if (!j) return send_error(res, {ErrorCode::kFileNotFound, "no job '" + std::string(req.matches[1]) + "'"});
    const int pos = ctx.jobs->queue_position(*j);
    std::lock_guard<std::mutex> lock(j->mu);
    send_json(res, j->to_json_locked(pos));
  });
  s.Get(R"(/v1/jobs/([A-Za-z0-9_]+)/events)", [&ctx](const httplib::Request& req, httplib::Response& res) {
    auto j = ctx.jobs->get(req.matches[1]);
    if (!j) return send_error(res, {ErrorCode::kFileNotFound, "no job '" + std::string(req.matches[1]) + "'"});
    sse_events(ctx, res, j);
  });
  s.Post(R"(/v1/jobs/([A-Za-z0-9_]+)/cancel)", [&ctx](const httplib::Request& req, httplib::Response& res) {
    if (!ctx.jobs->cancel(req.matches[1]))
      return send_error(res, {ErrorCode::kFileNotFound, "no job '" + std::string(req.matches[1]) + "'"});
    auto j = ctx.jobs->get(req.matches[1]);
    std::lock_guard<std::mutex> lock(j->mu);
    send_json(res, j->to_json_locked(0));
  });
  s.Post("/generate", [&ctx](const httplib::Request& req, httplib::Response& res) {
    JobRequest jr = job_request_from_json(parse_json_body(req.body));
    jr.idempotency_key = idempotency_key(req);
    auto job = validate_and_submit(ctx, std::move(jr));
    if (!job) return send_error(res, job.error());
    respond_when_done(ctx, res, *job, [&ctx](Job& j) { return sync_body(ctx, j); });
  });
  s.Get(R"(/v1/artifacts/([0-9a-f]{64}))", [&ctx](const httplib::Request& req, httplib::Response& res) {
    auto bytes = ctx.jobs->artifact(req.matches[1]);
    if (!bytes) return send_error(res, {ErrorCode::kFileNotFound, "no artifact '" + std::string(req.matches[1]) + "'"});
    res.set_content(*bytes, sniff_mime(*bytes));
  });
  s.Get("/metrics", [&ctx](const httplib::Request&, httplib::Response& res) {
    const QueueMetrics m = ctx.jobs->metrics();
    std::ostringstream os;
    os << "# HELP visiongen_queue_depth Jobs waiting to run.\n# TYPE visiongen_queue_depth gauge\n"
       << "visiongen_queue_depth " << m.queued << "\n"
       << "# HELP visiongen_jobs Jobs known to the server by status.\n# TYPE visiongen_jobs gauge\n";
    for (const char* st : {"queued", "loading", "running", "completed", "failed", "cancelled"})
      os << "visiongen_jobs{status=\"" << st << "\"} " << (m.by_status.count(st) ? m.by_status.at(st) : 0) << "\n";
    os << "# HELP visiongen_step_seconds Time spent in denoising steps.\n# TYPE visiongen_step_seconds summary\n"
       << "visiongen_step_seconds_sum " << m.step_seconds_sum << "\nvisiongen_step_seconds_count " << m.steps << "\n"
       << m.extra;
    res.set_content(os.str(), "text/plain; version=0.0.4");
  });
}

}  // namespace vg::server
