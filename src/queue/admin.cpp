#include "queue/admin.h"

#include <chrono>
#include <thread>

#include "queue/keys.h"

namespace vg::queue {

namespace {

nlohmann::json hash_json(const Reply& r) {
  nlohmann::json o = nlohmann::json::object();
  for (size_t i = 0; i + 1 < r.elements.size(); i += 2) {
    const std::string& k = r.elements[i].str;
    const std::string& v = r.elements[i + 1].str;
    auto parsed = nlohmann::json::parse(v, nullptr, false);
    o[k] = (k == "models" || k == "loaded" || v.find_first_not_of("0123456789") == std::string::npos) && !parsed.is_discarded()
               ? parsed
               : nlohmann::json(v);
  }
  return o;
}

}  // namespace

std::vector<std::pair<std::string, long long>> model_depths(Redis& r) {
  auto models = r.must({"SMEMBERS", kModelsKey});
  std::vector<std::vector<std::string>> lens;
  for (const auto& m : models.elements) lens.push_back({"XLEN", stream_key(m.str)});
  std::vector<std::pair<std::string, long long>> out;
  if (lens.empty()) return out;
  auto got = r.pipeline(lens);
  for (size_t i = 0; i < got.size(); ++i) out.emplace_back(models.elements[i].str, got[i].as_int());
  return out;
}

long long total_depth(const std::vector<std::pair<std::string, long long>>& depths) {
  long long total = 0;
  for (const auto& [model, n] : depths) total += n;
  return total;
}

nlohmann::json queue_status(Redis& r) {
  auto models = r.must({"SMEMBERS", kModelsKey});
  auto workers = r.must({"SMEMBERS", kWorkersKey});
  std::vector<std::vector<std::string>> cmds = {{"XLEN", kDeadKey}, {"HGETALL", kStatsKey}, {"GET", kDrainKey}};
  for (const auto& m : models.elements) {
    cmds.push_back({"XLEN", stream_key(m.str)});
    cmds.push_back({"XPENDING", stream_key(m.str), kGroup});
  }
  for (const auto& w : workers.elements) cmds.push_back({"HGETALL", worker_key(w.str)});
  auto got = r.pipeline(cmds);
  nlohmann::json out = {{"queue", r.url().text}, {"dead_letters", got[0].as_int()}, {"counters", hash_json(got[1])},
                        {"draining", got[2].str == "1"}};
  nlohmann::json ms = nlohmann::json::array(), ws = nlohmann::json::array();
  size_t i = 3;
  for (const auto& m : models.elements) {
    const long long depth = got[i].as_int();
    const long long pending = got[i + 1].elements.empty() ? 0 : got[i + 1].elements[0].as_int();
    ms.push_back({{"model", m.str}, {"depth", depth}, {"waiting", depth - pending}, {"running", pending}});
    i += 2;
  }
  for (const auto& w : workers.elements) {
    if (!got[i].elements.empty()) ws.push_back(hash_json(got[i]));
    else r.cmd({"SREM", kWorkersKey, w.str});  // its record expired: that worker is gone
    ++i;
  }
  out["models"] = ms;
  out["workers"] = ws;
  return out;
}

bool queue_drain(Redis& r, int timeout_s) {
  r.must({"SET", kDrainKey, "1"});
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  for (;;) {
    if (total_depth(model_depths(r)) == 0) return true;
    if (timeout_s > 0 && std::chrono::steady_clock::now() >= until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
}

void queue_resume(Redis& r) { r.must({"DEL", kDrainKey}); }

int queue_retry_dead(Redis& r) {
  int n = 0;
  auto dead = r.must({"XRANGE", kDeadKey, "-", "+"});
  for (const auto& e : dead.elements) {
    std::string job, model;
    const auto& fv = e.elements[1].elements;
    for (size_t i = 0; i + 1 < fv.size(); i += 2) {
      if (fv[i].str == "job") job = fv[i + 1].str;
      if (fv[i].str == "model") model = fv[i + 1].str;
    }
    if (!job.empty() && r.cmd({"EXISTS", job_key(job)}).as_int() == 1) {
      // the job is queued again before its entry exists: a worker reading the entry must see it queued
      r.pipeline({{"HSET", job_key(job), "status", "queued", "phase", "queued", "attempts", "0", "step", "0"},
                  {"HDEL", job_key(job), "state", "cancel"},
                  {"XADD", events_key(job), "MAXLEN", "~", std::to_string(kEventsMax), "*", "type", "progress", "data",
                   R"({"status":"queued","phase":"queued","step":0,"steps":0,"eta_s":null})"}});
      auto entry = r.must({"XADD", stream_key(model), "*", "job", job});
      r.cmd({"HSET", job_key(job), "entry", entry.str});
      ++n;
    }
    r.cmd({"XDEL", kDeadKey, e.elements[0].str});
  }
  return n;
}

}  // namespace vg::queue
