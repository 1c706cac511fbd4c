// The server's job queue: one worker runs jobs in order; every job has a
// status, progress, an event log (for SSE), a cancel flag and its result
// images, which are kept as artifacts addressed by their sha256.
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "artifacts/store.h"
#include "server/model_pool.h"

namespace vg::server {

struct JobRequest {
  GenerateParams params;
  std::string model;  // "" = default
  std::optional<Image> init_image, mask;
  std::string video_format = "mp4";  // video models: mp4 | webm | webp | gif
};

// One output: a PNG image, or a video (frames > 0) in the request's format.
struct JobImage {
  std::string artifact_id;  // sha256 of the file
  int width = 0, height = 0;
  uint64_t seed = 0;
  std::string infotext;
  std::string mime = "image/png";
  int frames = 0;
  double fps = 0;
};

enum class JobStatus { kQueued, kLoading, kRunning, kCompleted, kFailed, kCancelled };
const char* job_status_name(JobStatus s);
bool job_finished(JobStatus s);

struct JobEvent {
  int seq;
  std::string type;  // progress | completed | error | cancelled
  nlohmann::json data;
};

class Job {
 public:
  std::string id;
  JobRequest req;
  std::chrono::system_clock::time_point created = std::chrono::system_clock::now();
  std::chrono::system_clock::time_point finished;  // when it completed
  std::atomic<bool> cancel_requested{false};

  mutable std::mutex mu;
  std::condition_variable cv;
  JobStatus status = JobStatus::kQueued;
  std::string phase = "queued", model_used;
  int step = 0, steps = 0;
  double eta_s = -1, elapsed_s = 0;
  std::vector<JobImage> images;
  std::vector<std::string> warnings;
  SamplingInfo sampling;
  std::string applied_preset_patch = "{}";
  Error error;
  std::vector<JobEvent> events;

  // Caller holds mu.
  nlohmann::json to_json_locked(int queue_position) const;
  void push_event_locked(const std::string& type, nlohmann::json data);
};

struct QueueMetrics {
  size_t queued = 0;
  std::map<std::string, uint64_t> by_status;
  double step_seconds_sum = 0;
  uint64_t steps = 0;
};

class JobQueue {
 public:
  // keep_jobs: finished jobs remembered (GET /v1/jobs); older ones are forgotten.
  JobQueue(ModelPool& models, size_t max_queue, const std::string& artifacts_dir = "", size_t keep_jobs = 1000);
  ~JobQueue();
  // Fails with a code the HTTP layer maps to 429 when the queue is full.
  Result<std::shared_ptr<Job>> submit(JobRequest req);
  std::shared_ptr<Job> get(const std::string& id) const;
  std::vector<std::shared_ptr<Job>> list() const;
  bool cancel(const std::string& id);  // idempotent; false = unknown id
  void cancel_all();
  int queue_position(const Job& j) const;  // 0 = running or done
  // Waits until the job ends or `stop` returns true (checked every 250 ms).
  void wait(Job& j, const std::function<bool()>& stop) const;
  std::optional<std::string> artifact(const std::string& id) const;
  QueueMetrics metrics() const;
  // Stops taking jobs; cancels queued ones; lets the running one finish or cancels it.
  void shutdown(bool cancel_running);
  bool full() const;

 private:
  void worker();
  void run(const std::shared_ptr<Job>& j);

  ModelPool& models_;
  std::unique_ptr<ArtifactStore> store_;
  size_t max_queue_;
  size_t keep_jobs_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Job>> queue_;
  std::map<std::string, std::shared_ptr<Job>> jobs_;
  std::vector<std::string> job_order_;
  std::map<std::string, std::string> artifacts_;
  std::deque<std::string> artifact_order_;
  std::shared_ptr<Job> running_;
  bool stopping_ = false;
  double step_seconds_ = 0;
  uint64_t steps_ = 0;
  std::thread thread_;
};

}  // namespace vg::server
