// `visiongen serve`: runs the HTTP server until SIGINT/SIGTERM.
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <thread>

#include "cli/commands.h"
#include "cli/component_flags.h"
#include "core/data_dir.h"
#include "io/atomic_file.h"
#include "server/server.h"

namespace vg::cli {

namespace {
std::atomic<bool> g_stop{false};
void on_signal(int) { g_stop = true; }

// The non-empty pieces of `text` between any of the `separators`, as API keys.
void add_keys(const std::string& text, const char* separators, std::vector<std::string>* keys) {
  std::string key;
  for (char c : text + separators[0]) {
    if (std::strchr(separators, c)) {
      if (!key.empty()) keys->push_back(key);
      key.clear();
    } else {
      key += c;
    }
  }
}
}  // namespace

void add_serve(CLI::App& app) {
  auto o = std::make_shared<server::ServerOptions>();
  auto key_file = std::make_shared<std::string>();
  auto* cmd = app.add_subcommand("serve", "run the HTTP server (native jobs API, OpenAI and A1111 endpoints, browser UI)");
  cmd->add_option("--host", o->host, "address to listen on; other than loopback needs an API key")->capture_default_str();
  cmd->add_option("--port", o->port, "port (0 = any free port, printed on start)")->capture_default_str();
  cmd->add_option("--api-key", o->api_keys, "accept this key (Authorization: Bearer KEY); repeatable");
  cmd->add_option("--api-key-file", *key_file,
                  "read accepted keys from this file, one per line (keeps them out of `ps`; so does $VG_API_KEY)");
  cmd->add_option("--tls-cert", o->tls_cert, "serve HTTPS with this PEM certificate (chain); needs --tls-key");
  cmd->add_option("--tls-key", o->tls_key, "the PEM private key of --tls-cert");
  cmd->add_option("--cors-origin", o->cors_origins, "allow browser calls from this origin; repeatable");
  cmd->add_option("--models-dir", o->models_dirs, "serve the models directly inside this directory; repeatable");
  cmd->add_option("--lora-dir", o->lora_dirs,
                  "folder of LoRA .safetensors files (names in requests and <lora:name:w>, listed by GET /v1/loras); "
                  "repeatable, searched before $VG_LORA_DIR");
  cmd->add_option("--lora-mode", o->lora_mode, "merge: LoRAs added into the weights (unmerged exactly between requests); runtime: weights kept, updates added per layer output")
      ->capture_default_str()->check(CLI::IsMember({"merge", "runtime"}));
  cmd->add_option("-m,--default-model", o->default_model, "model used when a request names none (default: the demo model)");
  add_component_flags(cmd, &o->components, true);
  cmd->add_option("--artifacts-dir", o->artifacts_dir, "keep results in this content-addressed artifact store (default: memory only)");
  cmd->add_option("--client-timeout", o->client_timeout_s,
                  "seconds a client has to send a request's headers (its body: as many more plus 1 s per 64 KiB); "
                  "slower connections are closed (0 = no limit)")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->add_option("--keep-jobs", o->keep_jobs, "finished jobs the server remembers (GET /v1/jobs); older ones are forgotten")
      ->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--max-queue", o->max_queue, "jobs allowed to wait; more get HTTP 429")->capture_default_str();
  cmd->add_option("--queue", o->queue_url,
                  "scale out: queue jobs on this Redis (redis://HOST:PORT/DB) for `visiongen worker` processes "
                  "instead of running them here (docs/scale-out.md)");
  cmd->add_option("--max-queue-per-model", o->max_queue_per_model, "with --queue: jobs allowed to wait per model (0 = --max-queue)")
      ->capture_default_str();
  cmd->add_option("--artifacts", o->s3_url,
                  "with --queue: results are in this S3-compatible store (s3://BUCKET/PREFIX, the workers' --artifacts); "
                  "credentials from $AWS_ACCESS_KEY_ID/$AWS_SECRET_ACCESS_KEY");
  cmd->add_option("--s3-endpoint", o->s3_endpoint, "S3 endpoint URL, e.g. http://minio:9000 (default: AWS for --s3-region)");
  cmd->add_option("--s3-region", o->s3_region, "S3 region (default: us-east-1)");
  cmd->add_option("--job-ttl", o->job_ttl_s, "with --queue: seconds Redis keeps a job, its events and results")
      ->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("-t,--threads", o->threads, "CPU threads (0 = all cores)")->capture_default_str();
  cmd->add_option("--precision", o->precision, "auto (bf16 for models of 500 MB+ on CPUs with AVX512_BF16, else fp32), fp32 or bf16")
      ->capture_default_str()->check(CLI::IsMember({"auto", "fp32", "bf16"}));
  cmd->add_flag("--keep-text-encoder", o->keep_text_encoder,
                "keep the text encoder's weights in memory between prompts (default: made again per new prompt, "
                "~0.1-0.3 s; saves ~470 MB fp32 / ~235 MB bf16 with SD 1.x)");
  cmd->callback([o, key_file] {
    if (!key_file->empty()) {
      if (!path_exists(*key_file)) {
        set_exit_code(report_error({ErrorCode::kFileNotFound, "API key file '" + *key_file + "' does not exist"}));
        return;
      }
      add_keys(read_file(*key_file), "\n\r", &o->api_keys);  // one per line
    }
    // $VG_API_KEY: one key, or several separated by commas or newlines.
    if (const char* env = std::getenv("VG_API_KEY"); env && *env) add_keys(env, ",\n\r", &o->api_keys);
    if (o->default_model.empty()) o->default_model = default_model_path();
    if (!o->s3_url.empty() && o->queue_url.empty())
      return set_exit_code(report_error({ErrorCode::kInvalidArgument,
                                         "--artifacts s3://... works with --queue (the workers write there); use --artifacts-dir "
                                         "for a server that runs jobs itself"}));
    auto srv = server::Server::create(*o);
    if (!srv) return set_exit_code(report_error(srv.error()));
    auto port = (*srv)->start();
    if (!port) return set_exit_code(report_error(port.error()));
    std::printf("visiongen serving on %s://%s:%d/ (default model: %s)\n", o->tls_cert.empty() ? "http" : "https",
                o->host.c_str(), *port,
                o->default_model.empty() ? "none" : o->default_model.c_str());
    std::fflush(stdout);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    while (!g_stop) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    std::fprintf(stderr, "shutting down: cancelling queued jobs, stopping the running one\n");
    (*srv)->stop(true);
  });
}

}  // namespace vg::cli
