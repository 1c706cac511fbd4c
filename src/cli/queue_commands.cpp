// `visiongen queue status|drain|resume|retry-dead --queue redis://...`.
#include <cstdio>
#include <memory>

#include "cli/commands.h"
#include "core/error.h"
#include "queue/admin.h"

namespace vg::cli {

namespace {

void print_status(const nlohmann::json& s) {
  std::printf("queue %s%s: %lld dead letter(s)\n", s["queue"].get<std::string>().c_str(),
              s["draining"].get<bool>() ? " (draining)" : "", s["dead_letters"].get<long long>());
  std::printf("%-24s %8s %8s\n", "MODEL", "WAITING", "RUNNING");
  for (const auto& m : s["models"])
    std::printf("%-24s %8lld %8lld\n", m["model"].get<std::string>().c_str(), m["waiting"].get<long long>(),
                m["running"].get<long long>());
  std::printf("%-24s %-6s %-5s %8s %6s  %s\n", "WORKER", "DEVICE", "STATE", "DONE", "LOADS", "LOADED");
  for (const auto& w : s["workers"])
    std::printf("%-24s %-6s %-5s %8lld %6lld  %s\n", w.value("name", "?").c_str(), w.value("device", "?").c_str(),
                w.value("state", "?").c_str(), w.value("jobs_done", 0LL), w.value("model_loads", 0LL),
                w.value("loaded", nlohmann::json::array()).dump().c_str());
}

}  // namespace

void add_queue_commands(CLI::App& app) {
  auto url = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  auto timeout = std::make_shared<int>(0);
  auto* q = app.add_subcommand("queue", "inspect and operate the shared Redis queue of `serve --queue` and `worker`");
  q->require_subcommand(1);
  auto run = [url](auto fn) {
    return [url, fn] {
      auto st = guard([&] {
        queue::Redis r(queue::parse_redis_url(*url));
        return fn(r);
      });
      if (!st) set_exit_code(report_error(st.error()));
    };
  };
  auto* status = q->add_subcommand("status", "jobs waiting and running per model, live workers, dead letters");
  status->add_option("--queue", *url, "the Redis queue: redis://HOST:PORT/DB")->required();
  status->add_flag("--json", *json, "print JSON");
  status->callback(run([json](queue::Redis& r) {
    const auto s = queue::queue_status(r);
    if (*json) std::printf("%s\n", s.dump(2).c_str());
    else print_status(s);
    return 0;
  }));
  auto* drain = q->add_subcommand("drain", "hold new jobs back (front-ends answer 503) and wait until the queue is empty");
  drain->add_option("--queue", *url, "the Redis queue: redis://HOST:PORT/DB")->required();
  drain->add_option("--timeout", *timeout, "give up after this many seconds (0 = wait as long as it takes)")->capture_default_str();
  drain->callback(run([timeout](queue::Redis& r) {
    if (!queue::queue_drain(r, *timeout))
      fail(ErrorCode::kBusy, "the queue still has jobs after " + std::to_string(*timeout) +
                                 " s; it stays draining (run `visiongen queue resume` to take jobs again)");
    std::printf("queue drained: no job waits or runs; new jobs are held back until `visiongen queue resume`\n");
    return 0;
  }));
  auto* resume = q->add_subcommand("resume", "take new jobs again after `queue drain`");
  resume->add_option("--queue", *url, "the Redis queue: redis://HOST:PORT/DB")->required();
  resume->callback(run([](queue::Redis& r) {
    queue::queue_resume(r);
    std::printf("queue resumed\n");
    return 0;
  }));
  auto* retry = q->add_subcommand("retry-dead", "queue every dead-lettered job again (its attempts reset)");
  retry->add_option("--queue", *url, "the Redis queue: redis://HOST:PORT/DB")->required();
  retry->callback(run([](queue::Redis& r) {
    std::printf("%d job(s) queued again\n", queue::queue_retry_dead(r));
    return 0;
  }));
}

}  // namespace vg::cli
