// Process and machine memory figures: what the kernel can still give
// (MemAvailable, the cgroup's memory.max, $VG_MEMORY_LIMIT_BYTES), and the
// peak resident set per phase (Linux resets VmHWM through clear_refs).
#pragma once
#include <string>

namespace vg {

// Bytes this process may still use without swapping: the smallest of
// MemAvailable, the cgroup v2 limit minus its usage, and
// $VG_MEMORY_LIMIT_BYTES (a smaller budget for shared hosts).
double memory_budget_bytes();
// Peak resident set since start or since the last reset, in bytes.
double peak_rss_bytes();
// Starts a new peak (the current RSS); no-op where the kernel cannot.
void reset_peak_rss();
// "12.3 GB" (decimal gigabytes, one decimal) for messages.
std::string format_gb(double bytes);

}  // namespace vg
