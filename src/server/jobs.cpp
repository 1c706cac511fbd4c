#include "server/jobs.h"

#include <algorithm>
#include <cstdio>
#include <random>

#include "core/hash.h"
#include "core/error.h"
#include "io/image_io.h"
#include "io/video_io.h"
#include "server/http_util.h"
#include "server/job_runner.h"

namespace vg::server {

std::string new_job_id() {
  static std::mt19937_64 rng{std::random_device{}()};
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  unsigned char b[12];
  for (auto& c : b) c = static_cast<unsigned char>(rng());
  return "job_" + to_hex(b, sizeof b);
}

namespace {
constexpr size_t kMaxArtifacts = 512;
}  // namespace

LocalJobQueue::LocalJobQueue(ModelPool& models, size_t max_queue, const std::string& artifacts_dir, size_t keep_jobs)
    : models_(models), max_queue_(max_queue), keep_jobs_(std::max<size_t>(keep_jobs, 1)) {
  if (!artifacts_dir.empty()) {
    store_ = std::make_unique<ArtifactStore>(artifacts_dir);
    store_->clean_partial();
  }
  thread_ = std::thread([this] { worker(); });
}

LocalJobQueue::~LocalJobQueue() { shutdown(true); }

bool LocalJobQueue::full() const {
  std::lock_guard<std::mutex> lock(mu_);
  return queue_.size() >= max_queue_;
}

Result<std::shared_ptr<Job>> LocalJobQueue::submit(JobRequest req) {
  auto j = std::make_shared<Job>();
  j->id = new_job_id();
  j->req = std::move(req);
  std::lock_guard<std::mutex> lock(mu_);
  if (!j->req.idempotency_key.empty()) {  // a client's retry: the job it already queued
    auto it = idempotent_.find(j->req.idempotency_key);
    if (it != idempotent_.end() && jobs_.count(it->second)) return jobs_.at(it->second);
  }
  if (stopping_) return Error{ErrorCode::kCancelled, "the server is shutting down"};
  if (queue_.size() >= max_queue_)
    return Error{ErrorCode::kBusy, "the queue is full (" + std::to_string(max_queue_) + " jobs waiting); retry later"};
  queue_.push_back(j);
  jobs_[j->id] = j;
  if (!j->req.idempotency_key.empty()) idempotent_[j->req.idempotency_key] = j->id;
  job_order_.push_back(j->id);
  // forget the oldest finished jobs
  while (job_order_.size() > keep_jobs_) {
    auto it = jobs_.find(job_order_.front());
    if (it != jobs_.end()) {
      const std::shared_ptr<Job> old = it->second;  // outlives its lock below
      std::lock_guard<std::mutex> jl(old->mu);
      if (!job_finished(old->status)) break;
      if (!it->second->req.idempotency_key.empty()) idempotent_.erase(it->second->req.idempotency_key);
      jobs_.erase(it);
    }
    job_order_.erase(job_order_.begin());
  }
  cv_.notify_all();
  return j;
}

std::shared_ptr<Job> LocalJobQueue::get(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = jobs_.find(id);
  return it == jobs_.end() ? nullptr : it->second;
}

std::vector<std::shared_ptr<Job>> LocalJobQueue::list() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::shared_ptr<Job>> out;
  for (const auto& id : job_order_) {
    auto it = jobs_.find(id);
    if (it != jobs_.end()) out.push_back(it->second);
  }
  return out;
}

int LocalJobQueue::queue_position(const Job& j) const {
  std::lock_guard<std::mutex> lock(mu_);
  for (size_t i = 0; i < queue_.size(); ++i)
    if (queue_[i].get() == &j) return static_cast<int>(i) + 1;
  return 0;
}

bool LocalJobQueue::cancel(const std::string& id) {
  auto j = get(id);
  if (!j) return false;
  j->cancel_requested = true;
  std::shared_ptr<Job> finished;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = queue_.begin(); it != queue_.end(); ++it)
      if (it->get() == j.get()) {
        queue_.erase(it);
        finished = j;
        break;
      }
  }
  if (finished) {
    std::lock_guard<std::mutex> jl(j->mu);
    j->status = JobStatus::kCancelled;
    j->phase = "cancelled";
    j->error = {ErrorCode::kCancelled, "the job was cancelled before it started"};
    j->push_event_locked("cancelled", {{"id", j->id}});
  }
  return true;
}

void JobQueue::cancel_all() {
  for (const auto& j : list()) cancel(j->id);
}

void JobQueue::wait(Job& j, const std::function<bool()>& stop) const {
  std::unique_lock<std::mutex> lock(j.mu);
  while (!job_finished(j.status)) {
    j.cv.wait_for(lock, std::chrono::milliseconds(250));
    if (stop && !job_finished(j.status)) {
      lock.unlock();
      const bool s = stop();
      lock.lock();
      if (s) return;
    }
  }
}

std::optional<std::string> LocalJobQueue::artifact(const std::string& id) const {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = artifacts_.find(id);
    if (it != artifacts_.end()) return it->second;
  }
  if (store_) return store_->read(id);
  return std::nullopt;
}

QueueMetrics LocalJobQueue::metrics() const {
  QueueMetrics m;
  std::lock_guard<std::mutex> lock(mu_);
  m.queued = queue_.size();
  for (const auto& [id, j] : jobs_) {
    std::lock_guard<std::mutex> jl(j->mu);
    m.by_status[job_status_name(j->status)]++;
  }
  m.step_seconds_sum = step_seconds_;
  m.steps = steps_;
  return m;
}

void LocalJobQueue::shutdown(bool cancel_running) {
  std::vector<std::shared_ptr<Job>> dropped;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
    dropped.assign(queue_.begin(), queue_.end());
    queue_.clear();
    if (cancel_running && running_) running_->cancel_requested = true;
    cv_.notify_all();
  }
  for (auto& j : dropped) {
    std::lock_guard<std::mutex> jl(j->mu);
    j->status = JobStatus::kCancelled;
    j->phase = "cancelled";
    j->error = {ErrorCode::kCancelled, "the server shut down before the job started"};
    j->push_event_locked("cancelled", {{"id", j->id}});
  }
  if (thread_.joinable()) thread_.join();
}

void LocalJobQueue::worker() {
  for (;;) {
    std::shared_ptr<Job> j;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping
      j = queue_.front();
      queue_.pop_front();
      running_ = j;
    }
    RunHooks hooks;
    hooks.put = [this](const std::string& bytes, const JobImage& im, const nlohmann::json& info) {
      keep(bytes, im, info);
      return std::string();
    };
    hooks.step_done = [this](double s) {
      std::lock_guard<std::mutex> lock(mu_);
      step_seconds_ += s;
      ++steps_;
    };
    run_job(models_, j, hooks);
    std::lock_guard<std::mutex> lock(mu_);
    running_.reset();
  }
}

void LocalJobQueue::keep(const std::string& bytes, const JobImage& im, const nlohmann::json& info) {
  if (store_) store_->put(bytes, im.mime, im.width, im.height, info, im.frames > 0 ? im.frames : 1, im.fps);
  std::lock_guard<std::mutex> lock(mu_);
  if (artifacts_.count(im.artifact_id)) return;
  artifacts_[im.artifact_id] = bytes;
  artifact_order_.push_back(im.artifact_id);
  while (artifact_order_.size() > kMaxArtifacts) {
    artifacts_.erase(artifact_order_.front());
    artifact_order_.pop_front();
  }
}

}  // namespace vg::server
