// Opt-in time accounting per kernel kind, for `visiongen bench --profile`.
// Off by default: a disabled scope costs one relaxed load.
#pragma once
#include <atomic>
#include <chrono>
#include <map>
#include <string>

namespace vg::profile {

extern std::atomic<bool> g_enabled;
void add(const char* kind, double seconds);
std::map<std::string, double> totals();
void reset();

class Scope {
 public:
  explicit Scope(const char* kind) : kind_(g_enabled.load(std::memory_order_relaxed) ? kind : nullptr) {
    if (kind_) t0_ = std::chrono::steady_clock::now();
  }
  ~Scope() {
    if (kind_) add(kind_, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count());
  }
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;

 private:
  const char* kind_;
  std::chrono::steady_clock::time_point t0_;
};

}  // namespace vg::profile
