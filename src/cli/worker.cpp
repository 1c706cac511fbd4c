// `visiongen worker`: runs jobs from the shared Redis queue until SIGINT or
// SIGTERM (the first finishes the running job, or hands it back with
// --on-stop hand-back; a second hands it back at once).
#include <httplib.h>
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <memory>
#include <thread>

#include "cli/commands.h"
#include "cli/component_flags.h"
#include "core/data_dir.h"
#include "core/error.h"
#include "queue/worker.h"

namespace vg::cli {

namespace {
std::atomic<bool> g_stop{false}, g_hand_back{false};
std::atomic<bool> g_hand_back_on_stop{false};  // --on-stop hand-back
// The first signal stops taking jobs (and, with --on-stop hand-back, gives the
// running one back); a second one always gives it back.
void on_signal(int) {
  if (g_stop || g_hand_back_on_stop) g_hand_back = true;
  g_stop = true;
}

// /healthz, /readyz and /metrics on --port, for Kubernetes and Prometheus.
std::unique_ptr<httplib::Server> health_server(queue::Worker& w, const std::string& host, int port, std::thread* t) {
  auto s = std::make_unique<httplib::Server>();
  s->Get("/healthz", [](const httplib::Request&, httplib::Response& res) { res.set_content("{\"status\":\"ok\"}", "application/json"); });
  s->Get("/readyz", [&w](const httplib::Request&, httplib::Response& res) {
    res.status = w.ready() ? 200 : 503;
    res.set_content(w.ready() ? "{\"status\":\"ready\"}" : "{\"status\":\"not ready\"}", "application/json");
  });
  s->Get("/metrics", [&w](const httplib::Request&, httplib::Response& res) { res.set_content(w.metrics(), "text/plain; version=0.0.4"); });
  if (!s->bind_to_port(host, port)) fail(ErrorCode::kIoError, "cannot listen on " + host + ":" + std::to_string(port) + " (in use?)");
  *t = std::thread([srv = s.get()] { srv->listen_after_bind(); });
  return s;
}
}  // namespace

void add_worker(CLI::App& app) {
  auto o = std::make_shared<queue::WorkerOptions>();
  auto on_stop = std::make_shared<std::string>("finish");
  auto port = std::make_shared<int>(0);
  auto host = std::make_shared<std::string>("127.0.0.1");
  auto* cmd = app.add_subcommand("worker", "run jobs from a shared Redis queue that `serve --queue` front-ends fill (docs/scale-out.md)");
  cmd->add_option("--queue", o->queue_url, "the Redis queue: redis://HOST:PORT/DB")->required();
  cmd->add_option("--name", o->name, "this worker's name in `queue status` (default: HOSTNAME-PID)");
  cmd->add_option("-m,--default-model", o->default_model, "model used by jobs that name none (default: the demo model)");
  cmd->add_option("--models-dir", o->models_dirs, "serve the models directly inside this directory; repeatable");
  cmd->add_option("--models", o->models, "take jobs for these model ids only (default: every model found)")->delimiter(',');
  cmd->add_option("--preload", o->preload, "load these models at start (default: the default model)")->delimiter(',');
  cmd->add_option("--artifacts-dir", o->artifacts_dir,
                  "store results in this artifact store, shared with the front-ends (default: in Redis, for --job-ttl)");
  auto* art = cmd->add_option("--artifacts", o->s3_url,
                              "redis (default without --artifacts-dir: results in Redis for --job-ttl) or s3://BUCKET/PREFIX: "
                              "an S3-compatible store, results carry presigned URLs; credentials from $AWS_ACCESS_KEY_ID/"
                              "$AWS_SECRET_ACCESS_KEY");
  art->check([](const std::string& v) {
    return v == "redis" || v.rfind("s3://", 0) == 0 ? std::string() : std::string("must be redis or s3://BUCKET/PREFIX");
  });
  cmd->add_option("--s3-endpoint", o->s3_endpoint, "S3 endpoint URL, e.g. http://minio:9000 (default: AWS for --s3-region)");
  cmd->add_option("--s3-region", o->s3_region, "S3 region (default: us-east-1)");
  cmd->add_option("--presign-ttl", o->presign_ttl_s, "seconds the presigned result URLs stay valid (S3)")
      ->capture_default_str()->check(CLI::Range(1, 604800));
  cmd->add_option("--visibility-timeout", o->visibility_timeout_s,
                  "seconds after which a silent worker's job is reclaimed by another")
      ->capture_default_str()->check(CLI::Range(1, 86400));
  cmd->add_option("--max-attempts", o->max_attempts, "runs of a job before it goes to the dead-letter stream")
      ->capture_default_str()->check(CLI::Range(1, 100));
  cmd->add_option("--route-wait", o->route_wait_s,
                  "seconds a job for a model another worker has loaded waits for it before this worker loads the model")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->add_option("--job-ttl", o->job_ttl_s, "seconds Redis keeps a finished job, its events and results")
      ->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--on-stop", *on_stop, "on SIGTERM/SIGINT: finish the running job, or hand it back to the queue")
      ->capture_default_str()->check(CLI::IsMember({"finish", "hand-back"}));
  cmd->add_option("--port", *port, "serve /healthz, /readyz and /metrics on this port (0 = none)")->capture_default_str();
  cmd->add_option("--host", *host, "address for --port")->capture_default_str();
  cmd->add_option("-t,--threads", o->load.threads, "CPU threads (0 = all cores)")->capture_default_str();
  cmd->add_option("--precision", o->load.precision, "auto, fp32 or bf16 (as `serve`)")
      ->capture_default_str()->check(CLI::IsMember({"auto", "fp32", "bf16"}));
  cmd->add_option("--lora-dir", o->load.lora_dirs, "folder of LoRA .safetensors files; repeatable");
  cmd->add_option("--lora-mode", o->load.lora_mode, "merge or runtime (as `serve`)")
      ->capture_default_str()->check(CLI::IsMember({"merge", "runtime"}));
  add_component_flags(cmd, &o->components, true);
  cmd->callback([o, on_stop, port, host] {
    g_hand_back_on_stop = *on_stop == "hand-back";
    if (o->s3_url == "redis") o->s3_url.clear();
    o->load.lora_confined = true;  // jobs name LoRAs; they never pass paths
    if (o->default_model.empty()) o->default_model = default_model_path();
    auto w = guard([&] { return std::make_unique<queue::Worker>(*o); });
    if (!w) return set_exit_code(report_error(w.error()));
    std::thread health_thread;
    std::unique_ptr<httplib::Server> health;
    if (*port > 0) {
      auto h = guard([&] { return health_server(**w, *host, *port, &health_thread); });
      if (!h) return set_exit_code(report_error(h.error()));
      health = std::move(*h);
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    std::printf("visiongen worker %s on %s\n", (*w)->name().c_str(), o->queue_url.c_str());
    std::fflush(stdout);
    auto ran = guard([&] { return (*w)->run(g_stop, g_hand_back), 0; });
    if (health) health->stop();
    if (health_thread.joinable()) health_thread.join();
    if (!ran) return set_exit_code(report_error(ran.error()));
    std::fprintf(stderr, "worker %s stopped\n", (*w)->name().c_str());
  });
}

}  // namespace vg::cli
