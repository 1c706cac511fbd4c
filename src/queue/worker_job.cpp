// Running one queued job on a worker: start it (attempts counted, dead
// letter after too many), forward its progress and previews, store its
// outputs, then finish it atomically (state, final event, acknowledgement).
#include <cstdio>
#include <optional>

#include "core/error.h"
#include "queue/keys.h"
#include "queue/scripts.h"
#include "queue/worker_impl.h"
#include "server/job_runner.h"

namespace vg::queue {

namespace {

// Sends progress and previews as they happen; reads the cancel flag with
// each progress event, so a cancel stops the job within one step.
void forward(Redis& r, server::Job& j, const server::JobEvent& ev) {
  if (ev.type != "progress" && ev.type != "preview") return;  // the finish script sends the final one
  const bool progress = ev.type == "progress";
  nlohmann::json data = ev.data;
  if (progress) data["worker"] = j.worker, data["attempts"] = j.attempts;  // front-ends show where it runs
  auto got = guard([&] {
    return r.cmd({"EVAL", kProgressScript, "2", job_key(j.id), events_key(j.id), ev.type, data.dump(),
                  std::to_string(kEventsMax), progress ? server::job_status_name(j.status) : "", j.phase,
                  std::to_string(j.step), std::to_string(j.steps)});
  });
  if (got && got->str == "1") j.cancel_requested = true;
}

}  // namespace

void Worker::Impl::process(const Entry& e, const std::atomic<bool>& hand_back) {
  const auto t0 = std::chrono::steady_clock::now();
  auto start = redis->must({"EVAL", kStartScript, "2", job_key(e.job), kStatsKey, o.name, std::to_string(o.max_attempts)});
  const std::string verdict = start.elements.empty() ? "missing" : start.elements[0].str;
  auto ack = [&] { redis->pipeline({{"XACK", e.stream, kGroup, e.id}, {"XDEL", e.stream, e.id}}); };
  if (verdict == "missing" || verdict == "finished") return ack();  // expired, cancelled or already done
  auto j = std::make_shared<server::Job>();
  j->id = e.job;
  j->worker = o.name;
  j->attempts = static_cast<int>(start.elements[1].as_int());
  std::optional<Error> dead;
  if (verdict == "dead") {
    dead = Error{ErrorCode::kInternal, "the job was started " + std::to_string(j->attempts) +
                                      " times and every worker running it stopped before it finished (last: " +
                                      start.elements[2].str + "); it is in the dead-letter stream: fix the cause, then "
                                      "run `visiongen queue retry-dead`"};
  } else {
    auto req = guard([&] { return server::job_request_from_queue(nlohmann::json::parse(start.elements[2].str)); });
    if (!req) dead = Error{req.error().code, "the queued request cannot be read: " + req.error().message};
    else j->req = std::move(*req);
    j->created = std::chrono::system_clock::time_point(std::chrono::seconds(start.elements[3].as_int()));
  }
  {
    std::lock_guard<std::mutex> lock(mu);
    current = e;
    if (j->attempts > 1) ++st.reclaimed;
  }
  bool handed_back = false;
  if (!dead) {
    const bool will_load = !models->peek(j->req.model);
    if (will_load) {
      std::lock_guard<std::mutex> lock(mu);
      ++st.model_loads;
    }
    j->on_event = [&](const server::JobEvent& ev) {
      forward(*redis, *j, ev);
      // a stop request with hand-back cancels the job at its next step
      if (hand_back && !j->cancel_requested) handed_back = true, j->cancel_requested = true;
    };
    server::RunHooks hooks;
    hooks.put = [this](const std::string& bytes, const server::JobImage& im, const nlohmann::json& info) {
      if (store) store->put(bytes, im.mime, im.width, im.height, info, im.frames > 0 ? im.frames : 1, im.fps);
      if (s3) {
        s3->put(im.artifact_id, bytes, im.mime);
        return s3->presigned_get(im.artifact_id, o.presign_ttl_s);
      }
      if (!store) redis->must({"SET", artifact_key(im.artifact_id), bytes, "EX", std::to_string(o.job_ttl_s)});
      return std::string();
    };
    auto ran = guard([&] { return server::run_job(*models, j, hooks), 0; });
    if (!ran) {  // run_job reports errors in the job; this is a bug's exception: fail the job, keep the worker
      std::lock_guard<std::mutex> jl(j->mu);
      j->status = server::JobStatus::kFailed;
      j->error = ran.error();
    }
  }
  std::lock_guard<std::mutex> jl(j->mu);
  j->on_event = nullptr;
  if (handed_back) {
    nlohmann::json ev = {{"status", "queued"}, {"phase", "queued"}, {"step", 0}, {"steps", 0}, {"eta_s", nullptr}};
    redis->must({"EVAL", kHandBackScript, "2", job_key(e.job), events_key(e.job), std::to_string(kEventsMax), ev.dump()});
    if (auto r = give_back(e.stream, e.id); r.error()) fail(ErrorCode::kInternal, "Redis refused XCLAIM: " + r.str);
    std::fprintf(stderr, "[worker %s] handed job %s back to the queue\n", o.name.c_str(), e.job.c_str());
  } else {
    if (dead) {
      j->status = server::JobStatus::kFailed;
      j->error = *dead;
      j->phase = "failed";
    }
    nlohmann::json state = j->to_json_locked(0);
    const std::string status = server::job_status_name(j->status);
    const std::string type = j->status == server::JobStatus::kCompleted ? "completed"
                             : j->status == server::JobStatus::kCancelled ? "cancelled" : "error";
    const bool dead_letter = verdict == "dead";
    redis->must({"EVAL", kFinishScript, "5", job_key(e.job), events_key(e.job), e.stream, kStatsKey, kDeadKey, e.id, status,
                 state.dump(), type, std::to_string(kEventsMax), std::to_string(o.job_ttl_s),
                 dead_letter ? dead->message : "", j->req.model.empty() ? e.stream.substr(stream_key("").size()) : j->req.model});
    std::lock_guard<std::mutex> lock(mu);
    if (j->status == server::JobStatus::kCompleted) ++st.jobs_done;
    else if (j->status == server::JobStatus::kCancelled) ++st.jobs_cancelled;
    else ++st.jobs_failed;
    if (dead_letter) ++st.dead_lettered;
  }
  std::lock_guard<std::mutex> lock(mu);
  current.id.clear();
  st.busy_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace vg::queue
