#include "queue/worker.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "queue/keys.h"
#include "queue/worker_impl.h"

namespace vg::queue {

namespace {

// An entry of an XREADGROUP / XAUTOCLAIM answer: [id, [field, value, ...]].
bool parse_entry(const std::string& stream, const Reply& r, Entry* e) {
  if (r.elements.size() != 2) return false;
  e->stream = stream;
  e->id = r.elements[0].str;
  e->job.clear();
  const auto& fv = r.elements[1].elements;
  for (size_t i = 0; i + 1 < fv.size(); i += 2)
    if (fv[i].str == "job") e->job = fv[i + 1].str;
  return true;
}

int64_t ms_of(const std::string& entry_id) { return std::atoll(entry_id.substr(0, entry_id.find('-')).c_str()); }

}  // namespace

Worker::Worker(WorkerOptions o) : impl_(std::make_unique<Impl>()) {
  Impl& w = *impl_;
  w.o = std::move(o);
  if (w.o.name.empty()) {
    char host[256] = {0};
    gethostname(host, sizeof host - 1);
    w.o.name = std::string(host) + "-" + std::to_string(getpid());
  }
  w.redis = std::make_unique<Redis>(parse_redis_url(w.o.queue_url));
  w.redis->must({"PING"});
  w.models = std::make_unique<server::ModelPool>(w.o.default_model, w.o.models_dirs, w.o.load, w.o.components);
  for (const auto& m : w.models->list())
    if (w.o.models.empty() || std::find(w.o.models.begin(), w.o.models.end(), m.id) != w.o.models.end())
      w.servable.push_back(m.id);
  for (const auto& want : w.o.models)
    if (std::find(w.servable.begin(), w.servable.end(), want) == w.servable.end())
      fail(ErrorCode::kUnknownModel, "--models names '" + want + "', which is not the default model nor in a --models-dir");
  if (w.servable.empty()) fail(ErrorCode::kUnknownModel, "this worker has no model to serve; pass -m MODEL or --models-dir DIR");
  if (!w.o.artifacts_dir.empty()) w.store = std::make_unique<ArtifactStore>(w.o.artifacts_dir);
  if (!w.o.s3_url.empty()) w.s3 = std::make_unique<S3Store>(parse_s3_url(w.o.s3_url, w.o.s3_endpoint, w.o.s3_region));
  w.register_streams();
}

Worker::~Worker() {
  impl_->quit = true;
  impl_->cv.notify_all();
  if (impl_->heartbeat.joinable()) impl_->heartbeat.join();
}

const std::string& Worker::name() const { return impl_->o.name; }
bool Worker::ready() const { return impl_->ready; }

WorkerStats Worker::stats() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->st;
}

void Worker::Impl::register_streams() {
  for (const auto& m : servable) {
    auto r = redis->cmd({"XGROUP", "CREATE", stream_key(m), kGroup, "0", "MKSTREAM"});
    if (r.error() && r.str.rfind("BUSYGROUP", 0) != 0) fail(ErrorCode::kInternal, "Redis refused XGROUP CREATE: " + r.str);
  }
}

std::string Worker::Impl::loaded_json() const {
  nlohmann::json a = nlohmann::json::array();
  for (const auto& m : models->loaded())
    if (std::find(servable.begin(), servable.end(), m) != servable.end()) a.push_back(m);
  return a.dump();
}

// Every second: the worker's record (what it serves and holds, for routing
// and `queue status`), and a claim on its running entry so that it is not
// reclaimed while this worker lives.
void Worker::Impl::beat(Redis& r, std::chrono::steady_clock::time_point& last_claim) {
  const bool is_ready = ready;  // read first: `ready` is set after the preload was counted
  Entry cur;
  WorkerStats s;
  {
    std::lock_guard<std::mutex> lock(mu);
    cur = current;
    s = st;
  }
  const std::string key = worker_key(o.name);
  std::vector<std::vector<std::string>> cmds = {
      {"HSET", key, "name", o.name, "device", "cpu", "models", nlohmann::json(servable).dump(), "loaded", loaded_json(),
       "state", cur.id.empty() ? "idle" : "busy", "job", cur.job, "jobs_done", std::to_string(s.jobs_done),
       "model_loads", std::to_string(s.model_loads), "ready", is_ready ? "1" : "0"},
      {"EXPIRE", key, std::to_string(std::max(10, 3 * o.visibility_timeout_s))},  // a few missed beats are no death
      {"SADD", kWorkersKey, o.name}};
  const auto now = std::chrono::steady_clock::now();
  if (!cur.id.empty() && now - last_claim >= std::chrono::milliseconds(o.visibility_timeout_s * 1000 / 3)) {
    cmds.push_back({"XCLAIM", cur.stream, kGroup, o.name, "0", cur.id, "JUSTID"});
    last_claim = now;
  }
  r.pipeline(cmds);
}

std::vector<std::string> Worker::Impl::held_elsewhere() {
  std::vector<std::string> held;
  auto names = redis->cmd({"SMEMBERS", kWorkersKey});
  std::vector<std::vector<std::string>> cmds;
  for (const auto& n : names.elements)
    if (n.str != o.name) cmds.push_back({"HGET", worker_key(n.str), "loaded"});
  if (cmds.empty()) return held;
  for (const auto& r : redis->pipeline(cmds)) {
    if (r.nil()) continue;  // that worker's record expired: it is gone
    auto a = nlohmann::json::parse(r.str, nullptr, false);
    if (a.is_array())
      for (const auto& m : a)
        if (m.is_string()) held.push_back(m.get<std::string>());
  }
  return held;
}

// Whether the oldest job not yet taken from `stream` has waited route_wait_s.
bool Worker::Impl::waited_long(const std::string& stream) {
  auto groups = redis->cmd({"XINFO", "GROUPS", stream});
  std::string last = "0-0";
  for (const auto& g : groups.elements)
    for (size_t i = 0; i + 1 < g.elements.size(); i += 2)
      if (g.elements[i].str == "last-delivered-id") last = g.elements[i + 1].str;
  auto r = redis->pipeline({{"XRANGE", stream, "(" + last, "+", "COUNT", "1"}, {"TIME"}});
  if (r[0].elements.empty() || r[1].elements.size() < 2) return false;
  const int64_t now_ms = r[1].elements[0].as_int() * 1000 + r[1].elements[1].as_int() / 1000;
  return now_ms - ms_of(r[0].elements[0].elements[0].str) >= o.route_wait_s * 1000LL;
}

Reply Worker::Impl::give_back(const std::string& stream, const std::string& id) {
  return redis->cmd({"XCLAIM", stream, kGroup, o.name, "0", id, "IDLE", std::to_string(o.visibility_timeout_s * 1000LL + 1000), "JUSTID"});
}

bool Worker::Impl::reclaim(Entry* e) {
  const std::string idle = std::to_string(o.visibility_timeout_s * 1000LL);
  for (const auto& m : servable) {
    auto r = redis->cmd({"XAUTOCLAIM", stream_key(m), kGroup, o.name, idle, "0-0", "COUNT", "1"});
    if (r.error() || r.elements.size() < 2) continue;
    for (const auto& entry : r.elements[1].elements) {
      if (entry.elements.size() == 2 && entry.elements[1].type == Reply::kArray && parse_entry(stream_key(m), entry, e))
        return true;
      if (!entry.elements.empty())  // deleted meanwhile: nothing to run
        redis->cmd({"XACK", stream_key(m), kGroup, entry.elements[0].str});
    }
  }
  return false;
}

bool Worker::Impl::next(Entry* e) {
  // 1. models loaded here: no load needed
  std::vector<std::string> loaded, others;
  for (const auto& m : servable) (models->peek(m) ? loaded : others).push_back(m);
  for (const auto& m : loaded) {
    auto r = redis->cmd({"XREADGROUP", "GROUP", kGroup, o.name, "COUNT", "1", "STREAMS", stream_key(m), ">"});
    if (!r.error() && !r.elements.empty() && !r.elements[0].elements[1].elements.empty())
      return parse_entry(stream_key(m), r.elements[0].elements[1].elements[0], e);
  }
  // 2. wait for any job this worker should take: models loaded here, models
  // no other worker holds, and jobs that waited too long for the worker that holds theirs
  const auto held = held_elsewhere();
  std::vector<std::string> keys;
  for (const auto& m : loaded) keys.push_back(stream_key(m));
  for (const auto& m : others)
    if (std::find(held.begin(), held.end(), m) == held.end() || waited_long(stream_key(m))) keys.push_back(stream_key(m));
  if (keys.empty()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    return false;
  }
  std::vector<std::string> argv = {"XREADGROUP", "GROUP", kGroup, o.name, "COUNT", "1", "BLOCK", "1000", "STREAMS"};
  argv.insert(argv.end(), keys.begin(), keys.end());
  for (size_t i = 0; i < keys.size(); ++i) argv.push_back(">");
  auto r = redis->cmd(argv);
  if (r.error() || r.elements.empty()) return false;
  bool got = false;
  for (const auto& stream : r.elements)
    for (const auto& entry : stream.elements[1].elements) {
      if (!got) {
        got = parse_entry(stream.elements[0].str, entry, e);
        continue;
      }
      give_back(stream.elements[0].str, entry.elements[0].str);  // a second stream answered in the same read
    }
  return got;
}

void Worker::run(const std::atomic<bool>& stop, const std::atomic<bool>& hand_back) {
  Impl& w = *impl_;
  w.heartbeat = std::thread([&w] {
    Redis r(parse_redis_url(w.o.queue_url));
    auto last_claim = std::chrono::steady_clock::now();
    while (!w.quit) {
      guard([&] { return w.beat(r, last_claim), 0; });
      std::unique_lock<std::mutex> lock(w.mu);
      w.cv.wait_for(lock, std::chrono::seconds(1), [&] { return w.quit.load(); });
    }
    guard([&] { return r.cmd({"DEL", worker_key(w.o.name)}), 0; });
  });
  for (const auto& m : w.o.preload.empty() ? std::vector<std::string>{w.models->default_id()} : w.o.preload) {
    if (m.empty()) continue;
    auto e = w.models->acquire(m);
    if (!e) throw VgException(e.error().code, "cannot preload model '" + m + "': " + e.error().message);
    std::lock_guard<std::mutex> lock(w.mu);
    ++w.st.model_loads;
  }
  w.ready = true;
  auto last_reclaim = std::chrono::steady_clock::now() - std::chrono::hours(1);
  while (!stop) {
    Entry e;
    auto got = guard([&] {
      if (std::chrono::steady_clock::now() - last_reclaim >= std::chrono::seconds(1)) {
        last_reclaim = std::chrono::steady_clock::now();
        if (w.reclaim(&e)) return true;
      }
      return w.next(&e);
    });
    if (!got) {  // Redis away (restarting?): wait and try again
      w.ready = false;
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
      continue;
    }
    w.ready = true;
    if (!*got || e.id.empty()) continue;
    auto done = guard([&] { return w.process(e, hand_back), 0; });
    if (!done) {  // Redis went away mid-job: the entry stays pending and is reclaimed later
      std::fprintf(stderr, "[worker %s] job %s: %s\n", w.o.name.c_str(), e.job.c_str(), done.error().message.c_str());
      std::lock_guard<std::mutex> lock(w.mu);
      w.current.id.clear();
    }
  }
}

std::string Worker::metrics() const {
  const WorkerStats s = stats();
  std::ostringstream os;
  os << "# HELP visiongen_worker_jobs_total Jobs this worker finished, by outcome.\n# TYPE visiongen_worker_jobs_total counter\n"
     << "visiongen_worker_jobs_total{outcome=\"completed\"} " << s.jobs_done << "\n"
     << "visiongen_worker_jobs_total{outcome=\"failed\"} " << s.jobs_failed << "\n"
     << "visiongen_worker_jobs_total{outcome=\"cancelled\"} " << s.jobs_cancelled << "\n"
     << "# HELP visiongen_worker_reclaimed_total Jobs this worker took over from a worker that went silent.\n"
     << "# TYPE visiongen_worker_reclaimed_total counter\nvisiongen_worker_reclaimed_total " << s.reclaimed << "\n"
     << "# HELP visiongen_worker_dead_lettered_total Jobs this worker moved to the dead-letter stream.\n"
     << "# TYPE visiongen_worker_dead_lettered_total counter\nvisiongen_worker_dead_lettered_total " << s.dead_lettered << "\n"
     << "# HELP visiongen_worker_model_loads_total Models this worker loaded.\n"
     << "# TYPE visiongen_worker_model_loads_total counter\nvisiongen_worker_model_loads_total " << s.model_loads << "\n"
     << "# HELP visiongen_worker_busy_seconds_total Time spent running jobs.\n"
     << "# TYPE visiongen_worker_busy_seconds_total counter\nvisiongen_worker_busy_seconds_total " << s.busy_seconds << "\n"
     << "# HELP visiongen_worker_ready Models loaded and queue reachable.\n# TYPE visiongen_worker_ready gauge\n"
     << "visiongen_worker_ready " << (ready() ? 1 : 0) << "\n";
  return os.str();
}

}  // namespace vg::queue
