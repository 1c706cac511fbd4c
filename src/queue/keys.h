// The names of everything the scale-out queue keeps in Redis, in one place
// (docs/scale-out.md describes each).
#pragma once
#include <string>

namespace vg::queue {

inline const char* kGroup = "workers";          // the consumer group on every model stream
inline const char* kModelsKey = "vg:models";    // set: models jobs were queued for
inline const char* kWorkersKey = "vg:workers";  // set: worker names ever seen
inline const char* kDeadKey = "vg:dead";        // stream: dead-lettered jobs
inline const char* kStatsKey = "vg:stats";      // hash: reclaims, dead_letters, completed, failed, cancelled
inline const char* kDrainKey = "vg:draining";   // "1" while `queue drain` holds new jobs back

inline std::string stream_key(const std::string& model) { return "vg:q:" + model; }
inline std::string job_key(const std::string& id) { return "vg:job:" + id; }
inline std::string events_key(const std::string& id) { return "vg:ev:" + id; }
inline std::string idempotency_key(const std::string& key) { return "vg:idem:" + key; }
inline std::string artifact_key(const std::string& sha) { return "vg:art:" + sha; }
inline std::string worker_key(const std::string& name) { return "vg:worker:" + name; }

// Events kept per job (older ones are trimmed).
constexpr int kEventsMax = 2000;

}  // namespace vg::queue
