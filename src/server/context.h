// What every route handler shares.
#pragma once
#include <httplib.h>

#include <functional>

#include "server/conn_guard.h"
#include "server/http_util.h"
#include "server/jobs.h"
#include "server/server.h"

namespace vg::server {

struct Context {
  ServerOptions opts;
  ModelPool models;
  JobQueue jobs;
  // A1111's "current checkpoint" (POST /sdapi/v1/options); "" = the default model.
  std::mutex a1111_mu;
  std::string a1111_model;
  Context(const ServerOptions& o)
      : opts(o), models(o.default_model, o.models_dirs, load_options(o), o.components), jobs(models, o.max_queue, o.artifacts_dir, o.keep_jobs) {}
  static LoadOptions load_options(const ServerOptions& o) {
    LoadOptions l;
    l.threads = o.threads;
    l.precision = o.precision;
    l.keep_text_encoder = o.keep_text_encoder;
    l.lora_dirs = o.lora_dirs;
    l.lora_confined = true;  // clients name LoRAs; they never pass server paths
    l.lora_mode = o.lora_mode;
    return l;
  }
};

// Checks the request against the model before queueing it (so errors get a
// proper status instead of failing later), then submits it.
Result<std::shared_ptr<Job>> validate_and_submit(Context& ctx, JobRequest req);

// Streams the job's final body once it ends; writes a space every 250 ms so
// a client that went away is noticed, and its job cancelled.
void respond_when_done(Context& ctx, httplib::Response& res, std::shared_ptr<Job> job,
                       std::function<nlohmann::json(Job&)> body);

// What the request parsers know of the models: a model's family, "" when it
// cannot be loaded (validation reports that).
inline FamilyOf family_lookup(Context& ctx) {
  return [&ctx](const std::string& model) {
    auto e = ctx.models.acquire(model);
    return e ? (*e)->info().family : std::string();
  };
}

void add_native_routes(Router& s, Context& ctx);
void add_openai_routes(Router& s, Context& ctx);
void add_openai_video_routes(Router& s, Context& ctx);
void add_a1111_routes(Router& s, Context& ctx);
void add_ui_routes(Router& s, Context& ctx);

}  // namespace vg::server
