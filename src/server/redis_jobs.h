// serve --queue redis://...: this server is a front-end. It validates
// requests as always, queues them on the model's Redis stream for
// `visiongen worker` processes, and mirrors each job it is asked about
// (status, progress, events, results) by following the job's event stream,
// so every route (SSE, the sync endpoints, cancel) works as with the local
// queue, through any front-end.
#pragma once
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "artifacts/s3_store.h"
#include "server/jobs.h"

namespace vg::queue {
class Redis;
}

namespace vg::server {

struct RedisQueueOptions {
  std::string url;                 // redis://HOST:PORT/DB
  size_t max_queue = 16;           // jobs waiting over all models; more get 429
  size_t max_queue_per_model = 0;  // jobs waiting per model (0 = max_queue)
  std::string artifacts_dir;       // a store shared with the workers; "" = results live in Redis
  std::string s3_url, s3_endpoint, s3_region;  // results in an S3-compatible store (the workers' --artifacts)
  size_t keep_jobs = 1000;         // jobs mirrored in memory
  int job_ttl_s = 86400;           // how long Redis keeps a job, its events and its results
};

class RedisJobQueue : public JobQueue {
 public:
  // Throws VgException(queue_unavailable) when Redis cannot be reached.
  explicit RedisJobQueue(RedisQueueOptions o);
  ~RedisJobQueue() override;
  Result<std::shared_ptr<Job>> submit(JobRequest req) override;
  std::shared_ptr<Job> get(const std::string& id) override;
  std::vector<std::shared_ptr<Job>> list() const override;
  bool cancel(const std::string& id) override;
  int queue_position(const Job& j) const override;
  std::optional<std::string> artifact(const std::string& id) const override;
  QueueMetrics metrics() const override;
  void shutdown(bool cancel_running) override;
  bool full() const override;
  bool ready() const override;

 private:
  struct Followed {
    std::shared_ptr<Job> job;
    std::string last = "0-0";     // last event id read
    std::set<std::string> skip;   // events already applied here (a cancel)
  };
  std::shared_ptr<Job> remember(std::shared_ptr<Job> j, bool follow);
  void follow_loop();
  // Applies one event of the job's stream to its mirror (caller holds mu_).
  void apply(Job& j, const std::string& type, const std::string& data);

  RedisQueueOptions opts_;
  std::string wake_key_;  // a stream this front-end's follower also reads: a new job wakes it
  std::unique_ptr<queue::Redis> redis_;  // requests (guarded by redis_mu_)
  mutable std::mutex redis_mu_;
  std::unique_ptr<ArtifactStore> store_;
  std::unique_ptr<S3Store> s3_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, std::shared_ptr<Job>> jobs_;
  std::vector<std::string> job_order_;
  std::map<std::string, Followed> followed_;
  std::vector<double> latency_buckets_;  // job latency histogram (front-end view)
  std::vector<uint64_t> latency_counts_;
  double latency_sum_ = 0;
  uint64_t latency_n_ = 0;
  bool stopping_ = false;
  std::thread follower_;
};

}  // namespace vg::server
