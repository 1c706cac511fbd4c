// `visiongen worker --queue redis://...`: takes jobs from the shared Redis
// queue (one stream per model, consumer group "workers"), runs them with the
// same code as the local server, publishes progress, previews and results,
// and acknowledges a job only once its result is stored. A worker that dies
// leaves its job pending: another worker reclaims it after the visibility
// timeout (XAUTOCLAIM) and runs it again with the same seed. Jobs go
// preferably to a worker that has their model loaded.
#pragma once
#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "visiongen/visiongen.h"

namespace vg::queue {

struct WorkerOptions {
  std::string queue_url;
  std::string name;  // "" = HOSTNAME-PID
  std::string default_model;
  std::vector<std::string> models_dirs;
  std::vector<std::string> models;   // serve only these model ids (empty = every model it finds)
  std::vector<std::string> preload;  // load these at start (empty = the default model)
  std::string artifacts_dir;         // results into this shared store; "" = into Redis (with the job's TTL)
  std::string s3_url;                // s3://BUCKET/PREFIX: results into an S3-compatible store instead
  std::string s3_endpoint, s3_region;
  int presign_ttl_s = 3600;          // lifetime of the presigned GET URLs in S3 results
  int visibility_timeout_s = 30;     // a job whose worker went silent this long is reclaimed
  int max_attempts = 3;              // runs of a job (reclaims included) before it is dead-lettered
  int route_wait_s = 10;             // a job for a model another worker holds waits this long for it
  int job_ttl_s = 86400;
  LoadOptions load;                  // threads, precision, LoRA folders...
  LoadOptions components;            // components of the default model
};

struct WorkerStats {
  uint64_t jobs_done = 0, jobs_failed = 0, jobs_cancelled = 0, reclaimed = 0, dead_lettered = 0, model_loads = 0;
  double busy_seconds = 0;
};

class Worker {
 public:
  // Throws VgException (queue_unavailable, file_not_found, ...) with a sentence.
  explicit Worker(WorkerOptions o);
  ~Worker();
  // Takes and runs jobs until `stop` becomes true; a second request
  // (`hand_back`) gives the running job back at its next step.
  void run(const std::atomic<bool>& stop, const std::atomic<bool>& hand_back);
  bool ready() const;  // models preloaded and Redis reachable
  WorkerStats stats() const;
  const std::string& name() const;
  // Prometheus text: this worker's counters.
  std::string metrics() const;
  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace vg::queue
