#include "server/jobs.h"

#include <algorithm>
#include <cstdio>
#include <random>

#include "core/hash.h"
#include "core/error.h"
#include "io/image_io.h"
#include "io/video_io.h"
#include "server/http_util.h"

namespace vg::server {

namespace {

std::string new_job_id() {
  static std::mt19937_64 rng{std::random_device{}()};
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  unsigned char b[12];
  for (auto& c : b) c = static_cast<unsigned char>(rng());
  return "job_" + to_hex(b, sizeof b);
}

constexpr size_t kMaxArtifacts = 512;

}  // namespace

const char* job_status_name(JobStatus s) {
  switch (s) {
    case JobStatus::kQueued: return "queued";
    case JobStatus::kLoading: return "loading";
    case JobStatus::kRunning: return "running";
    case JobStatus::kCompleted: return "completed";
    case JobStatus::kFailed: return "failed";
    case JobStatus::kCancelled: return "cancelled";
  }
  return "unknown";
}

bool job_finished(JobStatus s) {
  return s == JobStatus::kCompleted || s == JobStatus::kFailed || s == JobStatus::kCancelled;
}

nlohmann::json Job::to_json_locked(int queue_position) const {
  nlohmann::json j = {{"id", id},
                      {"status", job_status_name(status)},
                      {"phase", phase},
                      {"step", step},
                      {"steps", steps},
                      {"progress", steps > 0 ? static_cast<double>(step) / steps : (status == JobStatus::kCompleted ? 1.0 : 0.0)},
                      {"queue_position", queue_position},
                      {"created", std::chrono::duration_cast<std::chrono::seconds>(created.time_since_epoch()).count()},
                      {"model", model_used.empty() ? req.model : model_used}};
  j["eta_s"] = eta_s >= 0 ? nlohmann::json(eta_s) : nlohmann::json(nullptr);
  if (status == JobStatus::kCompleted) {
    nlohmann::json imgs = nlohmann::json::array(), vids = nlohmann::json::array();
    for (const auto& im : images) {
      nlohmann::json o = {{"id", im.artifact_id},
                          {"uri", "/v1/artifacts/" + im.artifact_id},
                          {"mime", im.mime},
                          {"width", im.width},
                          {"height", im.height},
                          {"seed", im.seed},
                          {"infotext", im.infotext}};
      if (im.frames > 0) {
        o["frames"] = im.frames;
        o["fps"] = im.fps;
        vids.push_back(std::move(o));
      } else {
        imgs.push_back(std::move(o));
      }
    }
    j["result"] = {{"images", imgs},
                   {"videos", vids},
                   {"warnings", warnings},
                   {"sampler_in", sampling.sampler_in},
                   {"sampler_effective", sampling.sampler_effective},
                   {"scheduler_in", sampling.scheduler_in},
                   {"scheduler_effective", sampling.scheduler_effective},
                   {"elapsed_s", elapsed_s},
                   {"applied_preset_patch", nlohmann::json::parse(applied_preset_patch, nullptr, false)}};
  }
  if (status == JobStatus::kFailed || status == JobStatus::kCancelled)
    j["error"] = {{"code", error_code_name(error.code)}, {"message", error.message}};
  return j;
}

void Job::push_event_locked(const std::string& type, nlohmann::json data) {
  events.push_back({static_cast<int>(events.size()), type, std::move(data)});
  cv.notify_all();
}

JobQueue::JobQueue(ModelPool& models, size_t max_queue, const std::string& artifacts_dir, size_t keep_jobs)
    : models_(models), max_queue_(max_queue), keep_jobs_(std::max<size_t>(keep_jobs, 1)) {
  if (!artifacts_dir.empty()) {
    store_ = std::make_unique<ArtifactStore>(artifacts_dir);
    store_->clean_partial();
  }
  thread_ = std::thread([this] { worker(); });
}

JobQueue::~JobQueue() { shutdown(true); }

bool JobQueue::full() const {
  std::lock_guard<std::mutex> lock(mu_);
  return queue_.size() >= max_queue_;
}

Result<std::shared_ptr<Job>> JobQueue::submit(JobRequest req) {
  auto j = std::make_shared<Job>();
  j->id = new_job_id();
  j->req = std::move(req);
  std::lock_guard<std::mutex> lock(mu_);
  if (stopping_) return Error{ErrorCode::kCancelled, "the server is shutting down"};
  if (queue_.size() >= max_queue_)
    return Error{ErrorCode::kBusy, "the queue is full (" + std::to_string(max_queue_) + " jobs waiting); retry later"};
  queue_.push_back(j);
  jobs_[j->id] = j;
  job_order_.push_back(j->id);
  // forget the oldest finished jobs
  while (job_order_.size() > keep_jobs_) {
    auto it = jobs_.find(job_order_.front());
    if (it != jobs_.end()) {
      std::lock_guard<std::mutex> jl(it->second->mu);
      if (!job_finished(it->second->status)) break;
      jobs_.erase(it);
    }
    job_order_.erase(job_order_.begin());
  }
  cv_.notify_all();
  return j;
}

std::shared_ptr<Job> JobQueue::get(const std::string& id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = jobs_.find(id);
  return it == jobs_.end() ? nullptr : it->second;
}

std::vector<std::shared_ptr<Job>> JobQueue::list() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::shared_ptr<Job>> out;
  for (const auto& id : job_order_) {
    auto it = jobs_.find(id);
    if (it != jobs_.end()) out.push_back(it->second);
  }
  return out;
}

int JobQueue::queue_position(const Job& j) const {
  std::lock_guard<std::mutex> lock(mu_);
  for (size_t i = 0; i < queue_.size(); ++i)
    if (queue_[i].get() == &j) return static_cast<int>(i) + 1;
  return 0;
}

bool JobQueue::cancel(const std::string& id) {
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

std::optional<std::string> JobQueue::artifact(const std::string& id) const {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = artifacts_.find(id);
    if (it != artifacts_.end()) return it->second;
  }
  if (store_) return store_->read(id);
  return std::nullopt;
}

QueueMetrics JobQueue::metrics() const {
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

void JobQueue::shutdown(bool cancel_running) {
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

void JobQueue::worker() {
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
    run(j);
    std::lock_guard<std::mutex> lock(mu_);
    running_.reset();
  }
}

void JobQueue::run(const std::shared_ptr<Job>& j) {
  const auto t0 = std::chrono::steady_clock::now();
  {
    std::lock_guard<std::mutex> jl(j->mu);
    j->status = JobStatus::kLoading;
    j->phase = "loading";
    j->push_event_locked("progress", {{"status", "loading"}, {"phase", "loading"}, {"step", 0}, {"steps", 0}});
  }
  auto finish_error = [&](const Error& e) {
    std::lock_guard<std::mutex> jl(j->mu);
    const bool cancelled = e.code == ErrorCode::kCancelled;
    j->status = cancelled ? JobStatus::kCancelled : JobStatus::kFailed;
    j->phase = job_status_name(j->status);
    j->error = e;
    j->push_event_locked(cancelled ? "cancelled" : "error",
                         {{"id", j->id}, {"code", error_code_name(e.code)}, {"message", e.message}});
  };
  auto engine = models_.acquire(j->req.model);
  if (!engine) return finish_error(engine.error());
  if (j->cancel_requested) return finish_error({ErrorCode::kCancelled, "the job was cancelled"});
  {
    std::lock_guard<std::mutex> jl(j->mu);
    j->model_used = models_.resolve(j->req.model).id;
    j->status = JobStatus::kRunning;
    j->phase = "text_encode";
  }
  ImageInputs in;
  if (j->req.init_image) in.init_image = &*j->req.init_image;
  if (j->req.mask) in.mask = &*j->req.mask;
  const int n_images = j->req.params.batch_size;
  int image_index = 0;
  double last_step_s = 0;
  auto cb = [&](const Progress& p) {
    if (j->cancel_requested) return false;
    std::lock_guard<std::mutex> jl(j->mu);
    j->phase = p.stage;
    if (std::string(p.stage) == "denoise") {
      if (p.step == 0 || p.step < j->step) last_step_s = 0;
      j->steps = p.total * n_images;
      j->step = std::min(j->steps, image_index * p.total + p.step);
      if (p.step > 0) {
        {
          std::lock_guard<std::mutex> ql(mu_);
          step_seconds_ += p.stage_elapsed_s - last_step_s;
          ++steps_;
        }
        last_step_s = p.stage_elapsed_s;
        j->eta_s = p.stage_elapsed_s / p.step * (j->steps - j->step);
      }
      if (p.step == p.total) ++image_index;
    }
    j->push_event_locked("progress", {{"status", "running"}, {"phase", p.stage}, {"step", j->step}, {"steps", j->steps},
                                      {"eta_s", j->eta_s}});
    if (p.preview) {
      auto png = guard([&] { return encode_png(*p.preview, ""); });
      if (png)
        j->push_event_locked("preview", {{"step", j->step}, {"steps", j->steps}, {"mime", "image/png"},
                                         {"b64", base64_encode(*png)}});
    }
    return true;
  };
  auto res = (*engine)->generate(j->req.params, in, cb);
  if (!res) return finish_error(res.error());
  if (!res->videos.empty()) {
    std::lock_guard<std::mutex> jl(j->mu);
    j->phase = "video_encode";
    j->push_event_locked("progress", {{"status", "running"}, {"phase", "video_encode"}, {"step", j->step},
                                      {"steps", j->steps}, {"eta_s", j->eta_s}});
  }
  std::vector<JobImage> out;
  const size_t n_out = res->videos.empty() ? res->images.size() : res->videos.size();
  for (size_t i = 0; i < n_out; ++i) {
    const bool video = !res->videos.empty();
    auto enc = guard([&] {
      return video ? encode_video(res->videos[i], j->req.video_format, res->infotext[i])
                   : encode_png(res->images[i], res->infotext[i]);
    });
    if (!enc) return finish_error(enc.error());
    JobImage im{sha256_hex(*enc), 0, 0, res->seeds[i], res->infotext[i]};
    if (video) {
      const Video& v = res->videos[i];
      im.width = v.width, im.height = v.height, im.frames = static_cast<int>(v.frames.size()), im.fps = v.fps;
      im.mime = video_mime(j->req.video_format);
    } else {
      im.width = res->images[i].width, im.height = res->images[i].height;
    }
    if (store_) {
      nlohmann::json info = {{"job", j->id}, {"model", models_.resolve(j->req.model).id}, {"seed", res->seeds[i]},
                             {"infotext", res->infotext[i]}, {"sampler_in", res->sampling.sampler_in},
                             {"sampler_effective", res->sampling.sampler_effective}, {"scheduler_in", res->sampling.scheduler_in},
                             {"scheduler_effective", res->sampling.scheduler_effective},
                             {"timings", {{"load", res->timings.load_s}, {"text_encode", res->timings.text_encode_s},
                                          {"denoise", res->timings.denoise_s}, {"decode", res->timings.decode_s}}}};
      if (video) info["frames"] = im.frames, info["fps"] = im.fps;
      auto put = guard([&] { return store_->put(*enc, im.mime, im.width, im.height, info, video ? im.frames : 1, im.fps); });
      if (!put) return finish_error(put.error());
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!artifacts_.count(im.artifact_id)) {
        artifacts_[im.artifact_id] = std::move(*enc);
        artifact_order_.push_back(im.artifact_id);
        while (artifact_order_.size() > kMaxArtifacts) {
          artifacts_.erase(artifact_order_.front());
          artifact_order_.pop_front();
        }
      }
    }
    out.push_back(std::move(im));
  }
  std::fprintf(stderr, "[GEN][cpu] job=%s model=%s size=%dx%d steps=%d sampler=%s t_load=%.2f t_denoise=%.2f t_decode=%.2f images=%zu\n",
               j->id.c_str(), models_.resolve(j->req.model).id.c_str(), out.empty() ? 0 : out[0].width,
               out.empty() ? 0 : out[0].height, j->req.params.steps, res->sampling.sampler_effective.c_str(),
               res->timings.load_s, res->timings.denoise_s, res->timings.decode_s, out.size());
  std::lock_guard<std::mutex> jl(j->mu);
  j->images = std::move(out);
  j->warnings = res->warnings;
  j->sampling = res->sampling;
  j->applied_preset_patch = res->applied_preset_patch.empty() ? "{}" : res->applied_preset_patch;
  j->status = JobStatus::kCompleted;
  j->finished = std::chrono::system_clock::now();
  j->phase = "completed";
  j->step = j->steps;
  j->eta_s = 0;
  j->elapsed_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  j->push_event_locked("completed", j->to_json_locked(0));
}

}  // namespace vg::server
