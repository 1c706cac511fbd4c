// One generation job as the server tracks it: the request, its status and
// progress, its event log (for SSE), a cancel flag and its results (images
// or videos kept as artifacts addressed by their sha256). The same object
// runs in a local queue, in a scale-out worker, and mirrors a queued job on
// a front-end.
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "visiongen/visiongen.h"

namespace vg::server {

struct JobRequest {
  GenerateParams params;
  std::string model;  // "" = default
  std::optional<Image> init_image, mask;
  std::string video_format = "mp4";  // video models: mp4 | webm | webp | gif
  std::string idempotency_key;       // the client's Idempotency-Key: a retry gets the same job
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
  std::string url;  // scale-out with S3 results: a presigned GET URL of the object
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
  std::string worker;  // scale-out: the worker that ran it
  int attempts = 0;    // scale-out: runs started (a reclaimed job runs again)
  // Called (under mu) for every event pushed: a scale-out worker forwards them.
  std::function<void(const JobEvent&)> on_event;

  // Caller holds mu.
  nlohmann::json to_json_locked(int queue_position) const;
  void push_event_locked(const std::string& type, nlohmann::json data);
};

// The request as JSON for the shared queue (images as base64 PNG) and back.
nlohmann::json job_request_to_json(const JobRequest& r);
JobRequest job_request_from_queue(const nlohmann::json& j);  // throws VgException

// Sets a job's status, progress and results from Job::to_json_locked's
// output (a front-end mirroring a job that runs elsewhere). Caller holds mu.
void job_apply_json_locked(Job& j, const nlohmann::json& state);

}  // namespace vg::server
