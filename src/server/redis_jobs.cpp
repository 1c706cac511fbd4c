#include "server/redis_jobs.h"

#include <chrono>
#include <random>

#include "core/error.h"
#include "queue/admin.h"
#include "queue/keys.h"
#include "queue/redis.h"
#include "queue/scripts.h"
#include "server/http_util.h"

namespace vg::server {

using queue::Reply;

namespace {

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// The HMGET fields a mirror starts from.
const std::vector<std::string> kMirrorFields = {"status", "phase", "step", "steps", "model", "created", "worker", "attempts", "state"};

}  // namespace

RedisJobQueue::RedisJobQueue(RedisQueueOptions o) : opts_(std::move(o)) {
  redis_ = std::make_unique<queue::Redis>(queue::parse_redis_url(opts_.url));
  if (!redis_->ping()) redis_->must({"PING"});  // throws queue_unavailable with the reason
  if (!opts_.artifacts_dir.empty()) store_ = std::make_unique<ArtifactStore>(opts_.artifacts_dir);
  if (!opts_.s3_url.empty()) s3_ = std::make_unique<S3Store>(parse_s3_url(opts_.s3_url, opts_.s3_endpoint, opts_.s3_region));
  wake_key_ = "vg:wake:" + new_job_id().substr(4);
  latency_buckets_ = {0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300};
  latency_counts_.assign(latency_buckets_.size(), 0);
  follower_ = std::thread([this] { follow_loop(); });
}

RedisJobQueue::~RedisJobQueue() { shutdown(false); }

bool RedisJobQueue::full() const {
  std::lock_guard<std::mutex> lock(redis_mu_);
  return queue::total_depth(queue::model_depths(*redis_)) >= static_cast<long long>(opts_.max_queue);
}

bool RedisJobQueue::ready() const {
  std::lock_guard<std::mutex> lock(redis_mu_);
  return redis_->ping();
}

Result<std::shared_ptr<Job>> RedisJobQueue::submit(JobRequest req) {
  return guard([&]() -> std::shared_ptr<Job> {
    const std::string idem = req.idempotency_key.empty() ? "" : queue::idempotency_key(req.idempotency_key);
    std::vector<Reply> pre;
    {
      std::lock_guard<std::mutex> lock(redis_mu_);
      pre = redis_->pipeline({{"GET", queue::kDrainKey}, {"GET", idem.empty() ? "vg:idem:-" : idem}});
    }
    if (pre[0].str == "1")
      fail(ErrorCode::kQueueUnavailable, "the queue is draining (`visiongen queue drain`); retry once it resumes");
    if (!idem.empty() && !pre[1].nil())
      if (auto j = get(pre[1].str)) return j;  // a retry of a request already queued
    std::vector<std::pair<std::string, long long>> depths;
    {
      std::lock_guard<std::mutex> lock(redis_mu_);
      depths = queue::model_depths(*redis_);
    }
    const size_t per_model = opts_.max_queue_per_model ? opts_.max_queue_per_model : opts_.max_queue;
    for (const auto& [model, n] : depths)
      if (model == req.model && n >= static_cast<long long>(per_model))
        fail(ErrorCode::kBusy, "the queue for model '" + req.model + "' is full (" + std::to_string(per_model) +
                                   " jobs waiting); retry later");
    if (queue::total_depth(depths) >= static_cast<long long>(opts_.max_queue))
      fail(ErrorCode::kBusy, "the queue is full (" + std::to_string(opts_.max_queue) + " jobs waiting); retry later");
    // A reclaimed job runs again on another worker: its seed is fixed here so the image is the same.
    if (req.params.seed < 0) {
      static thread_local std::mt19937 rng{std::random_device{}()};
      req.params.seed = rng();
      req.params.set_fields.push_back("seed");
    }
    auto j = std::make_shared<Job>();
    j->id = new_job_id();
    j->model_used = req.model;
    const std::string request = job_request_to_json(req).dump();
    const std::string ttl = std::to_string(opts_.job_ttl_s);
    j->req = std::move(req);
    std::string other;  // the job another front-end queued for the same key a moment ago
    {
      std::lock_guard<std::mutex> lock(redis_mu_);
      if (!idem.empty() && redis_->must({"SET", idem, j->id, "NX", "EX", ttl}).nil())
        other = redis_->must({"GET", idem}).str;
      if (other.empty())
        redis_->must({"EVAL", queue::kSubmitScript, "3", queue::job_key(j->id), queue::stream_key(j->model_used),
                      queue::kModelsKey, ttl, j->model_used, request, std::to_string(unix_now())});
    }
    if (!other.empty()) {
      if (auto e = get(other)) return e;
      fail(ErrorCode::kBusy, "another request with this Idempotency-Key is being queued; retry in a moment");
    }
    remember(j, true);
    std::lock_guard<std::mutex> lock(redis_mu_);
    redis_->pipeline({{"XADD", wake_key_, "MAXLEN", "10", "*", "job", j->id}, {"EXPIRE", wake_key_, "3600"}});
    return j;
  });
}

std::shared_ptr<Job> RedisJobQueue::remember(std::shared_ptr<Job> j, bool follow) {
  std::lock_guard<std::mutex> lock(mu_);
  auto [it, added] = jobs_.emplace(j->id, j);
  if (!added) return it->second;
  job_order_.push_back(j->id);
  while (job_order_.size() > opts_.keep_jobs) {
    const std::string old = job_order_.front();
    job_order_.erase(job_order_.begin());
    jobs_.erase(old);
    followed_.erase(old);
  }
  if (follow) followed_[j->id].job = j;
  cv_.notify_all();
  return j;
}

std::shared_ptr<Job> RedisJobQueue::get(const std::string& id) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = jobs_.find(id);
    if (it != jobs_.end()) return it->second;
  }
  if (id.rfind("job_", 0) != 0 || id.size() > 64) return nullptr;
  std::vector<std::string> argv = {"HMGET", queue::job_key(id)};
  argv.insert(argv.end(), kMirrorFields.begin(), kMirrorFields.end());
  Reply r;
  {
    std::lock_guard<std::mutex> lock(redis_mu_);
    auto got = guard([&] { return redis_->cmd(argv); });
    if (!got || got->elements.size() != kMirrorFields.size() || got->elements[0].nil()) return nullptr;
    r = std::move(*got);
  }
  auto j = std::make_shared<Job>();
  j->id = id;
  nlohmann::json state = {{"status", r.elements[0].str}, {"phase", r.elements[1].str},
                          {"step", r.elements[2].as_int()}, {"steps", r.elements[3].as_int()},
                          {"model", r.elements[4].str}, {"worker", r.elements[6].str}, {"attempts", r.elements[7].as_int()}};
  j->created = std::chrono::system_clock::time_point(std::chrono::seconds(r.elements[5].as_int()));
  bool finished;
  {
    std::lock_guard<std::mutex> jl(j->mu);
    job_apply_json_locked(*j, state);
    if (!r.elements[8].nil()) job_apply_json_locked(*j, nlohmann::json::parse(r.elements[8].str, nullptr, false));
    finished = job_finished(j->status);
  }
  return remember(j, !finished);
}

std::vector<std::shared_ptr<Job>> RedisJobQueue::list() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::shared_ptr<Job>> out;
  for (const auto& id : job_order_) out.push_back(jobs_.at(id));
  return out;
}

int RedisJobQueue::queue_position(const Job& j) const {
  std::lock_guard<std::mutex> jl(j.mu);
  return j.status == JobStatus::kQueued ? 1 : 0;
}

bool RedisJobQueue::cancel(const std::string& id) {
  auto j = get(id);
  if (!j) return false;
  j->cancel_requested = true;
  nlohmann::json state;
  {
    std::lock_guard<std::mutex> jl(j->mu);
    if (job_finished(j->status)) return true;
    state = j->to_json_locked(0);
  }
  state["status"] = "cancelled";
  state["phase"] = "cancelled";
  state["error"] = {{"code", "cancelled"}, {"message", "the job was cancelled before it started"}};
  Reply r;
  {
    std::lock_guard<std::mutex> lock(redis_mu_);
    auto got = guard([&] {
      return redis_->must({"EVAL", queue::kCancelScript, "3", queue::job_key(id), queue::events_key(id),
                           queue::stream_key(j->model_used), std::to_string(queue::kEventsMax), state.dump(),
                           std::to_string(opts_.job_ttl_s)});
    });
    if (!got) return true;  // Redis is away: the flag stays set here; the client may retry
    r = std::move(*got);
  }
  if (r.elements.size() == 2 && r.elements[0].as_int() == 2) {  // cancelled while queued: apply it now
    std::lock_guard<std::mutex> lock(mu_);
    auto it = followed_.find(id);
    if (it != followed_.end()) it->second.skip.insert(r.elements[1].str);  // the follower will read it: skip it there
    apply(*j, "cancelled", state.dump());
  }
  return true;
}

std::optional<std::string> RedisJobQueue::artifact(const std::string& id) const {
  {
    std::lock_guard<std::mutex> lock(redis_mu_);
    auto r = guard([&] { return redis_->cmd({"GET", queue::artifact_key(id)}); });
    if (r && r->type == Reply::kString) return r->str;
  }
  if (store_)
    if (auto bytes = store_->read(id)) return bytes;
  if (s3_) {
    auto got = guard([&] { return s3_->get(id); });
    if (got) return *got;
  }
  return std::nullopt;
}

void RedisJobQueue::shutdown(bool) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    cv_.notify_all();
  }
  if (follower_.joinable()) follower_.join();
}

}  // namespace vg::server
