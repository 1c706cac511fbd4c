// Worker's insides, shared by worker.cpp (setup, heartbeat, choosing the
// next job) and worker_job.cpp (running one queued job).
#pragma once
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "artifacts/s3_store.h"
#include "artifacts/store.h"
#include "queue/redis.h"
#include "queue/worker.h"
#include "server/model_pool.h"

namespace vg::queue {

// One stream entry this worker holds.
struct Entry {
  std::string stream, id, job;
};

struct Worker::Impl {
  WorkerOptions o;
  std::unique_ptr<Redis> redis;  // the job loop's connection
  std::unique_ptr<server::ModelPool> models;
  std::unique_ptr<ArtifactStore> store;
  std::unique_ptr<S3Store> s3;
  std::vector<std::string> servable;  // model ids this worker takes jobs for
  std::atomic<bool> ready{false};
  std::atomic<bool> quit{false};
  std::thread heartbeat;
  mutable std::mutex mu;  // guards stats, current, state
  std::condition_variable cv;
  WorkerStats st;
  Entry current;  // the entry being run ("" id = idle)
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();

  void register_streams();
  void beat(Redis& r, std::chrono::steady_clock::time_point& last_claim);
  // The next entry to run, or none within about a second.
  bool next(Entry* e);
  bool reclaim(Entry* e);
  // Other live workers' loaded models.
  std::vector<std::string> held_elsewhere();
  bool waited_long(const std::string& stream);
  // Runs one entry to its end (worker_job.cpp).
  void process(const Entry& e, const std::atomic<bool>& hand_back);
  std::string loaded_json() const;
  // Marks an entry this worker holds as long idle, so that any worker's next reclaim takes it.
  Reply give_back(const std::string& stream, const std::string& id);
};

}  // namespace vg::queue
