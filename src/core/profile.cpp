#include "core/profile.h"

#include <mutex>

namespace vg::profile {

std::atomic<bool> g_enabled{false};

namespace {
std::mutex g_mu;
std::map<std::string, double>& table() {
  static std::map<std::string, double> t;
  return t;
}
}  // namespace

void add(const char* kind, double seconds) {
  std::lock_guard<std::mutex> l(g_mu);
  table()[kind] += seconds;
}

std::map<std::string, double> totals() {
  std::lock_guard<std::mutex> l(g_mu);
  return table();
}

void reset() {
  std::lock_guard<std::mutex> l(g_mu);
  table().clear();
}

}  // namespace vg::profile
