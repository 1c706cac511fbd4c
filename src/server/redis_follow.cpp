// RedisJobQueue's follower: one thread reads the event streams of the jobs
// this front-end mirrors (XREAD, blocking; a new job wakes it through the
// front-end's own wake stream) and applies each event to the mirror; and
// the queue's metrics.
#include <sstream>

#include "core/error.h"
#include "queue/admin.h"
#include "queue/keys.h"
#include "queue/redis.h"
#include "server/redis_jobs.h"

namespace vg::server {

using queue::Reply;

void RedisJobQueue::follow_loop() {
  queue::Redis r(queue::parse_redis_url(opts_.url));
  std::string wake_last = "$";
  while (true) {
    std::vector<std::string> keys, ids;
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (stopping_) return;
      for (const auto& [id, f] : followed_) {
        if (keys.size() >= 512) break;
        keys.push_back(queue::events_key(id));
        ids.push_back(f.last);
      }
    }
    keys.push_back(wake_key_);
    ids.push_back(wake_last);
    std::vector<std::string> argv = {"XREAD", "COUNT", "64", "BLOCK", "500", "STREAMS"};
    argv.insert(argv.end(), keys.begin(), keys.end());
    argv.insert(argv.end(), ids.begin(), ids.end());
    auto got = guard([&] { return r.cmd(argv); });
    if (!got || got->error()) {  // Redis away (restarting?): try again shortly
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait_for(lock, std::chrono::milliseconds(500), [&] { return stopping_; });
      continue;
    }
    if (wake_last == "$") wake_last = "0-0";  // from now on, every wake-up entry after the last one read
    for (const auto& stream : got->elements) {
      if (stream.elements.size() != 2) continue;
      const std::string& key = stream.elements[0].str;
      const auto& entries = stream.elements[1].elements;
      if (key == wake_key_) {
        if (!entries.empty()) wake_last = entries.back().elements[0].str;
        continue;
      }
      const std::string id = key.substr(std::string(queue::events_key("")).size());
      std::lock_guard<std::mutex> lock(mu_);
      auto it = followed_.find(id);
      if (it == followed_.end()) continue;
      Followed& f = it->second;
      for (const auto& e : entries) {
        if (e.elements.size() != 2) continue;
        f.last = e.elements[0].str;
        if (f.skip.erase(f.last)) continue;  // applied already (a cancel through this front-end)
        std::string type, data;
        const auto& fv = e.elements[1].elements;
        for (size_t i = 0; i + 1 < fv.size(); i += 2) (fv[i].str == "type" ? type : data) = fv[i + 1].str;
        apply(*f.job, type, data);
      }
      const std::shared_ptr<Job> job = f.job;  // outlives the erase below
      std::lock_guard<std::mutex> jl(job->mu);
      if (job_finished(job->status)) followed_.erase(it);
    }
  }
}

// Caller holds mu_.
void RedisJobQueue::apply(Job& j, const std::string& type, const std::string& data) {
  auto d = nlohmann::json::parse(data, nullptr, false);
  if (d.is_discarded() || !d.is_object()) return;
  std::lock_guard<std::mutex> jl(j.mu);
  if (job_finished(j.status)) return;
  if (type == "progress" || type == "preview") {
    if (type == "progress") job_apply_json_locked(j, d);
    j.push_event_locked(type, d);
    return;
  }
  job_apply_json_locked(j, d);  // completed | error | cancelled: the job's final state
  j.finished = std::chrono::system_clock::now();
  if (j.status == JobStatus::kCompleted) {
    j.push_event_locked("completed", d);
    const double s = std::chrono::duration<double>(j.finished - j.created).count();
    for (size_t i = 0; i < latency_buckets_.size(); ++i)
      if (s <= latency_buckets_[i]) ++latency_counts_[i];
    latency_sum_ += s;
    ++latency_n_;
  } else {
    j.push_event_locked(type, {{"id", j.id}, {"code", error_code_name(j.error.code)}, {"message", j.error.message}});
  }
}

QueueMetrics RedisJobQueue::metrics() const {
  QueueMetrics m;
  std::ostringstream os;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [id, j] : jobs_) {
      std::lock_guard<std::mutex> jl(j->mu);
      m.by_status[job_status_name(j->status)]++;
    }
    os << "# HELP visiongen_job_latency_seconds Submit to completion, seen by this front-end.\n"
       << "# TYPE visiongen_job_latency_seconds histogram\n";
    for (size_t i = 0; i < latency_buckets_.size(); ++i)
      os << "visiongen_job_latency_seconds_bucket{le=\"" << latency_buckets_[i] << "\"} " << latency_counts_[i] << "\n";
    os << "visiongen_job_latency_seconds_bucket{le=\"+Inf\"} " << latency_n_ << "\n"
       << "visiongen_job_latency_seconds_sum " << latency_sum_ << "\nvisiongen_job_latency_seconds_count " << latency_n_ << "\n";
  }
  std::lock_guard<std::mutex> lock(redis_mu_);
  auto st = guard([&] {
    const auto depths = queue::model_depths(*redis_);
    auto r = redis_->pipeline({{"XLEN", queue::kDeadKey}, {"HGETALL", queue::kStatsKey}});
    os << "# HELP visiongen_queue_up Whether the shared queue answers.\n# TYPE visiongen_queue_up gauge\nvisiongen_queue_up 1\n"
       << "# HELP visiongen_queue_model_depth Jobs waiting or running per model (shared queue).\n"
       << "# TYPE visiongen_queue_model_depth gauge\n";
    for (const auto& [model, n] : depths) os << "visiongen_queue_model_depth{model=\"" << model << "\"} " << n << "\n";
    m.queued = static_cast<size_t>(queue::total_depth(depths));
    os << "# HELP visiongen_dead_letters Jobs in the dead-letter stream.\n# TYPE visiongen_dead_letters gauge\n"
       << "visiongen_dead_letters " << r[0].as_int() << "\n"
       << "# HELP visiongen_queue_total Counters of the shared queue (all workers).\n# TYPE visiongen_queue_total counter\n";
    for (size_t i = 0; i + 1 < r[1].elements.size(); i += 2)
      os << "visiongen_queue_total{event=\"" << r[1].elements[i].str << "\"} " << r[1].elements[i + 1].as_int() << "\n";
    return 0;
  });
  if (!st) os << "# HELP visiongen_queue_up Whether the shared queue answers.\n# TYPE visiongen_queue_up gauge\nvisiongen_queue_up 0\n";
  m.extra = os.str();
  return m;
}

}  // namespace vg::server
