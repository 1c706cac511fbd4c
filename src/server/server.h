// `visiongen serve`: the HTTP server (native jobs API, OpenAI- and
// A1111-compatible endpoints, browser UI) on cpp-httplib.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "visiongen/error.h"
#include "visiongen/visiongen.h"

namespace vg::server {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 7860;  // 0 = any free port
  std::vector<std::string> api_keys;
  // HTTPS: a PEM certificate (chain) and its private key; both or neither.
  std::string tls_cert, tls_key;
  std::vector<std::string> cors_origins;
  std::vector<std::string> models_dirs;
  std::string default_model;  // path of the model used when a request names none
  std::string artifacts_dir;  // keep results in this artifact store ("" = memory only)
  // Scale-out: queue jobs on this Redis (redis://HOST:PORT/DB) for
  // `visiongen worker` processes instead of running them here ("" = local).
  std::string queue_url;
  size_t max_queue_per_model = 0;  // --queue: jobs waiting per model (0 = max_queue)
  int job_ttl_s = 86400;           // --queue: how long Redis keeps a job and its results
  std::string s3_url, s3_endpoint, s3_region;  // --queue: results in an S3-compatible store
  size_t max_queue = 16;
  size_t keep_jobs = 1000;  // finished jobs remembered for GET /v1/jobs/{id}
  size_t max_body_bytes = 64u << 20;
  // A client has this many seconds to send a request's headers, and as many
  // more plus 1 s per 64 KiB for its body; slower connections are closed
  // (slowloris). 0 = no limit beyond httplib's per-read timeout.
  int client_timeout_s = 10;
  int threads = 0;
  std::string precision = "auto";  // auto | fp32 | bf16 (see LoadOptions)
  bool keep_text_encoder = false;  // see LoadOptions
  std::vector<std::string> lora_dirs;
  std::string lora_mode = "merge";  // LoadOptions::lora_mode
  // Components of the default model only (transformer, text encoders, VAE,
  // config folder: the LoadOptions fields `serve --transformer ...` sets);
  // the other fields of this struct are ignored.
  LoadOptions components;
};

class Server {
 public:
  // Fails (invalid_argument) on a non-loopback host without an API key.
  static Result<std::unique_ptr<Server>> create(const ServerOptions& opts);
  ~Server();
  // Binds and serves in a background thread; returns the bound port.
  Result<int> start();
  // Blocks until stop() or a signal.
  void wait();
  // Graceful: stops accepting, cancels queued jobs, finishes (or cancels) the running one.
  void stop(bool cancel_running = true);
  struct Impl;

 private:
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

bool is_loopback_host(const std::string& host);

}  // namespace vg::server
