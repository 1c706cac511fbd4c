// `visiongen queue status|drain|resume|retry-dead`: what an operator does
// with the shared queue.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "queue/redis.h"

namespace vg::queue {

// Jobs waiting or running per model (the length of each model's stream), for
// every model jobs were queued for. Two round trips.
std::vector<std::pair<std::string, long long>> model_depths(Redis& r);
// The sum of model_depths().
long long total_depth(const std::vector<std::pair<std::string, long long>>& depths);

// Per model: jobs waiting or running (depth) and taken but not finished
// (pending); the live workers with what they serve and hold; dead letters;
// counters; whether the queue drains.
nlohmann::json queue_status(Redis& r);
// Holds new jobs back (front-ends answer 503) and waits until no job waits
// or runs, at most timeout_s (0 = no limit). Returns whether it emptied.
bool queue_drain(Redis& r, int timeout_s);
void queue_resume(Redis& r);
// Queues every dead-lettered job again (attempts reset); returns how many.
int queue_retry_dead(Redis& r);

}  // namespace vg::queue
