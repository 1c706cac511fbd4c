// Runs one job to its end on an engine from the pool: progress, previews
// and the final state land in the Job (and its events); each output is
// handed to RunHooks::put (an artifact store, memory, Redis) before the job
// completes. Shared by the local queue and the scale-out worker.
#pragma once
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "server/job.h"
#include "server/model_pool.h"

namespace vg::server {

struct RunHooks {
  // Keeps one encoded output (PNG or video bytes); throwing fails the job.
  // Returns a URL clients may fetch it from directly ("" = only /v1/artifacts).
  std::function<std::string(const std::string& bytes, const JobImage& im, const nlohmann::json& info)> put;
  // Seconds of one denoising step (metrics); optional.
  std::function<void(double seconds)> step_done;
};

void run_job(ModelPool& models, const std::shared_ptr<Job>& j, const RunHooks& hooks);

}  // namespace vg::server
