// The server's job queue. JobQueue is what the routes use; two kinds
// implement it: LocalJobQueue (one worker thread in this process runs jobs
// in order) and RedisJobQueue (serve --queue: jobs go to a shared Redis
// stream and `visiongen worker` processes run them; this process mirrors
// their state and events so every route, SSE included, works unchanged).
#pragma once
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "artifacts/store.h"
#include "server/job.h"
#include "server/model_pool.h"
#include "visiongen/params.h"

namespace vg::server {

struct QueueMetrics {
  size_t queued = 0;
  std::map<std::string, uint64_t> by_status;
  double step_seconds_sum = 0;
  uint64_t steps = 0;
  std::string extra;  // more Prometheus lines (the shared queue's figures)
};

class JobQueue {
 public:
  virtual ~JobQueue() = default;
  // Fails with a code the HTTP layer maps to 429 when the queue is full.
  virtual Result<std::shared_ptr<Job>> submit(JobRequest req) = 0;
  virtual std::shared_ptr<Job> get(const std::string& id) = 0;
  virtual std::vector<std::shared_ptr<Job>> list() const = 0;
  virtual bool cancel(const std::string& id) = 0;  // idempotent; false = unknown id
  void cancel_all();
  virtual int queue_position(const Job& j) const = 0;  // 0 = running or done
  // Waits until the job ends or `stop` returns true (checked every 250 ms).
  void wait(Job& j, const std::function<bool()>& stop) const;
  virtual std::optional<std::string> artifact(const std::string& id) const = 0;
  virtual QueueMetrics metrics() const = 0;
  // Stops taking jobs; cancels queued ones; lets the running one finish or cancels it.
  virtual void shutdown(bool cancel_running) = 0;
  virtual bool full() const = 0;
  // Whether new jobs can be taken now (GET /readyz): the shared queue is reachable.
  virtual bool ready() const { return true; }
};

class LocalJobQueue : public JobQueue {
 public:
  // keep_jobs: finished jobs remembered (GET /v1/jobs); older ones are forgotten.
  LocalJobQueue(ModelPool& models, size_t max_queue, const std::string& artifacts_dir = "", size_t keep_jobs = 1000);
  ~LocalJobQueue() override;
  Result<std::shared_ptr<Job>> submit(JobRequest req) override;
  std::shared_ptr<Job> get(const std::string& id) override;
  std::vector<std::shared_ptr<Job>> list() const override;
  bool cancel(const std::string& id) override;
  int queue_position(const Job& j) const override;
  std::optional<std::string> artifact(const std::string& id) const override;
  QueueMetrics metrics() const override;
  void shutdown(bool cancel_running) override;
  bool full() const override;

 private:
  void worker();
  void keep(const std::string& bytes, const JobImage& im, const nlohmann::json& info);

  ModelPool& models_;
  std::unique_ptr<ArtifactStore> store_;
  size_t max_queue_;
  size_t keep_jobs_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Job>> queue_;
  std::map<std::string, std::shared_ptr<Job>> jobs_;
  std::vector<std::string> job_order_;
  std::map<std::string, std::string> idempotent_;  // Idempotency-Key -> job id
  std::map<std::string, std::string> artifacts_;
  std::deque<std::string> artifact_order_;
  std::shared_ptr<Job> running_;
  bool stopping_ = false;
  double step_seconds_ = 0;
  uint64_t steps_ = 0;
  std::thread thread_;
};

// A new job id: "job_" and 24 hex digits.
std::string new_job_id();

}  // namespace vg::server
