// What every route handler shares.
#pragma once
#include <httplib.h>

#include <functional>

#include "server/conn_guard.h"
#include "server/http_util.h"
#include "server/jobs.h"
#include "server/redis_jobs.h"
#include "server/server.h"

namespace vg::server {

struct Context {
  ServerOptions opts;
  ModelPool models;
  std::unique_ptr<JobQueue> jobs;  // LocalJobQueue, or RedisJobQueue with --queue
  // A1111's "current checkpoint" (POST /sdapi/v1/options); "" = the default model.
  std::mutex a1111_mu;
  std::string a1111_model;
  Context(const ServerOptions& o)
      : opts(o), models(o.default_model, o.models_dirs, load_options(o), o.components), jobs(make_queue(o, models)) {}
  static std::unique_ptr<JobQueue> make_queue(const ServerOptions& o, ModelPool& models) {
    if (o.queue_url.empty()) return std::make_unique<LocalJobQueue>(models, o.max_queue, o.artifacts_dir, o.keep_jobs);
    RedisQueueOptions q;
    q.url = o.queue_url;
    q.max_queue = o.max_queue;
    q.max_queue_per_model = o.max_queue_per_model;
    q.artifacts_dir = o.artifacts_dir;
    q.keep_jobs = o.keep_jobs;
    q.job_ttl_s = o.job_ttl_s;
    q.s3_url = o.s3_url;
    q.s3_endpoint = o.s3_endpoint;
    q.s3_region = o.s3_region;
    return std::make_unique<RedisJobQueue>(q);
  }
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
