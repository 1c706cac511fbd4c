// Planned activation memory for a repeated pass (the UNet step).
//
// A dry run of the pass at the real shapes records every Tensor allocation
// (size, when it is made, when it dies) without running a kernel; a planner
// gives each allocation an offset in one buffer so that allocations alive at
// the same time never share bytes. The real passes then take their tensors
// from that buffer in the same order: the peak is known before the first step
// and the steps allocate nothing. A request that does not match the plan (a
// different size, or a slot whose neighbours are still held by a caller)
// falls back to the tensor pool, so a wrong plan costs memory, never data.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "core/tensor.h"

namespace vg {

struct AllocRecord {
  size_t bytes = 0;
  int64_t alloc_t = 0;  // event clock when made
  int64_t free_t = 0;   // event clock when the last reference died
};

struct ArenaPlan {
  // Per allocation, in order; bytes 0 = from the pool (the pass's results,
  // which live on after it, are never placed in the arena).
  std::vector<size_t> bytes, offset;
  std::vector<std::vector<int32_t>> conflicts;     // other slots sharing bytes with this one
  size_t arena_bytes = 0;                          // the buffer the plan needs
  size_t live_peak_bytes = 0;                      // most bytes alive at one time (lower bound)
};

// Offsets by "greedy by size": largest first, each at the lowest offset that
// no time-overlapping, already placed allocation uses. 64-byte aligned.
// Allocations still alive at `pass_end` (the event clock when the pass
// returned) are its results and stay outside the arena.
ArenaPlan plan_arena(const std::vector<AllocRecord>& trace, int64_t pass_end = INT64_MAX);

// While one lives on this thread, kernels skip their work and Tensor
// allocations are recorded (and backed by untouched scratch memory).
class DryRun {
 public:
  DryRun();
  ~DryRun();
  DryRun(const DryRun&) = delete;
  DryRun& operator=(const DryRun&) = delete;
  // Call after every tensor made during the run has died.
  std::vector<AllocRecord> trace() const;
  int64_t now() const;  // the event clock
  struct State;

 private:
  std::shared_ptr<State> state_;
  void* prev_hook_ = nullptr;
};
bool dry_run_active();

// One planned buffer; reused by every pass run inside an ArenaScope on it.
class Arena {
 public:
  explicit Arena(ArenaPlan plan);
  const ArenaPlan& plan() const;
  size_t served() const;  // allocations taken from the arena so far
  size_t missed() const;  // planned allocations of the last pass that fell back to the pool
  struct State;

 private:
  friend class ArenaScope;
  friend void arena_release(Arena& arena);
  std::shared_ptr<State> state_;
};

// Frees the arena's buffer now if no tensor in it is alive.
void arena_release(Arena& arena);

class ArenaScope {
 public:
  explicit ArenaScope(Arena& arena);
  ~ArenaScope();
  ArenaScope(const ArenaScope&) = delete;
  ArenaScope& operator=(const ArenaScope&) = delete;

 private:
  void* prev_hook_ = nullptr;
};

struct ArenaStats {
  size_t arena_bytes = 0, live_peak_bytes = 0, allocations = 0, served = 0, missed = 0;
};

// Arenas for one repeated pass (a model's forward), keyed by its input
// shapes: the first run with a key plans by a dry run of `pass`, every run
// takes its tensors from that plan. VG_ARENA=0 runs on the tensor pool.
class PlannedPass {
 public:
  // keep_buffer = false: the arena's memory goes back to the system after the
  // pass (one-off passes such as a VAE decode; the plan is kept).
  Tensor run(const std::vector<int64_t>& key, const std::function<Tensor()>& pass, bool keep_buffer = true) const;
  // The plan of the last run's key (null before the first run).
  std::optional<ArenaStats> last_stats() const;

 private:
  mutable std::mutex mu_;
  mutable std::map<std::vector<int64_t>, std::unique_ptr<Arena>> arenas_;
  mutable Arena* last_ = nullptr;
};

// Frees the buffers of arenas not in use (they are made again on next use);
// called by tensor_pool_trim().
void arena_trim_all();

}  // namespace vg
