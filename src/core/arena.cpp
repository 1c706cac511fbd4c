#include "core/arena.h"

#include <algorithm>
#include <cstdlib>
#include <limits>
#include <mutex>
#include <new>
#include <numeric>
#include <string>

#include "core/tensor.h"

namespace vg {

namespace {

constexpr size_t kAlign = 64;
size_t align_up(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

thread_local int g_dry_depth = 0;

}  // namespace

ArenaPlan plan_arena(const std::vector<AllocRecord>& trace, int64_t pass_end) {
  const size_t n = trace.size();
  ArenaPlan plan;
  plan.bytes.resize(n);
  plan.offset.assign(n, 0);
  plan.conflicts.resize(n);
  for (size_t i = 0; i < n; ++i) plan.bytes[i] = trace[i].free_t > pass_end ? 0 : align_up(trace[i].bytes);
  auto alive_together = [&](size_t a, size_t b) {
    return trace[a].alloc_t < trace[b].free_t && trace[b].alloc_t < trace[a].free_t;
  };
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return plan.bytes[a] > plan.bytes[b]; });
  std::vector<size_t> placed;
  for (size_t i : order) {
    if (plan.bytes[i] == 0) continue;
    // Ranges used by placed allocations alive at the same time, by offset.
    std::vector<std::pair<size_t, size_t>> busy;
    for (size_t j : placed)
      if (alive_together(i, j)) busy.emplace_back(plan.offset[j], plan.offset[j] + plan.bytes[j]);
    std::sort(busy.begin(), busy.end());
    size_t at = 0;
    for (const auto& [lo, hi] : busy) {
      if (lo >= at + plan.bytes[i]) break;  // fits in the gap before this range
      at = std::max(at, hi);
    }
    plan.offset[i] = at;
    plan.arena_bytes = std::max(plan.arena_bytes, at + plan.bytes[i]);
    placed.push_back(i);
  }
  for (size_t i = 0; i < n; ++i)
    for (size_t j = 0; j < n; ++j)
      if (i != j && plan.bytes[i] && plan.bytes[j] && plan.offset[i] < plan.offset[j] + plan.bytes[j] && plan.offset[j] < plan.offset[i] + plan.bytes[i])
        plan.conflicts[i].push_back(static_cast<int32_t>(j));
  // Most bytes alive at once: sweep the events in time order.
  std::vector<std::pair<int64_t, int64_t>> events;
  for (size_t i = 0; i < n; ++i) {
    events.emplace_back(trace[i].alloc_t, static_cast<int64_t>(plan.bytes[i]));
    events.emplace_back(trace[i].free_t, -static_cast<int64_t>(plan.bytes[i]));
  }
  std::sort(events.begin(), events.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first < b.first : a.second < b.second;  // frees first
  });
  int64_t live = 0;
  for (const auto& [t, d] : events) {
    live += d;
    plan.live_peak_bytes = std::max(plan.live_peak_bytes, static_cast<size_t>(std::max<int64_t>(live, 0)));
  }
  return plan;
}

// ---- dry run ----

struct DryRun::State : TensorAllocHook, std::enable_shared_from_this<DryRun::State> {
  std::vector<AllocRecord> records;
  int64_t clock = 0;
  // Backing for dry tensors: never written by kernels (they skip their work
  // in a dry run), so its pages are mostly never touched. Grows by new blocks;
  // old ones stay valid for tensors still alive.
  std::vector<std::unique_ptr<char, decltype(&std::free)>> blocks;
  size_t block_bytes = 0;

  std::shared_ptr<float> allocate(size_t bytes) override {
    if (bytes > block_bytes) {
      block_bytes = std::max(align_up(bytes), block_bytes * 2);
      void* p = std::aligned_alloc(kAlign, block_bytes);
      if (!p) throw std::bad_alloc();
      blocks.emplace_back(static_cast<char*>(p), &std::free);
    }
    const size_t index = records.size();
    records.push_back(AllocRecord{bytes, ++clock, std::numeric_limits<int64_t>::max()});
    auto* data = reinterpret_cast<float*>(blocks.back().get());
    auto self = shared_from_this();  // a tensor may outlive the DryRun object
    return std::shared_ptr<float>(data, [self, index](float*) { self->records[index].free_t = ++self->clock; });
  }
};

DryRun::DryRun() : state_(std::make_shared<State>()) {
  prev_hook_ = set_tensor_alloc_hook(state_.get());
  ++g_dry_depth;
}

DryRun::~DryRun() {
  --g_dry_depth;
  set_tensor_alloc_hook(static_cast<TensorAllocHook*>(prev_hook_));
}

std::vector<AllocRecord> DryRun::trace() const { return state_->records; }
int64_t DryRun::now() const { return state_->clock; }

bool dry_run_active() { return g_dry_depth > 0; }

// ---- arena ----

struct Arena::State : TensorAllocHook, std::enable_shared_from_this<Arena::State> {
  ArenaPlan plan;
  std::unique_ptr<char, decltype(&std::free)> buffer{nullptr, &std::free};
  std::vector<char> live;
  size_t live_count = 0, next = 0, served = 0, missed = 0, pass_missed = 0;
  std::mutex mu;  // deleters may run on whichever thread drops the last reference

  std::shared_ptr<float> allocate(size_t bytes) override {
    std::lock_guard<std::mutex> lock(mu);
    const size_t i = next++;
    if (i < plan.bytes.size() && plan.bytes[i] == 0) return nullptr;  // a result: from the pool
    // The slot itself and every slot sharing its bytes must be free: a caller
    // may still hold a tensor from the previous pass (e.g. a sampler keeping
    // the model outputs of earlier steps).
    bool ok = i < plan.bytes.size() && align_up(bytes) == plan.bytes[i] && !live[i];
    if (ok)
      for (int32_t j : plan.conflicts[i])
        if (live[static_cast<size_t>(j)]) ok = false;
    if (ok && !buffer) {
      void* p = std::aligned_alloc(kAlign, std::max(align_up(plan.arena_bytes), kAlign));
      if (!p) ok = false;
      else buffer.reset(static_cast<char*>(p));
    }
    if (!ok) {
      ++missed;
      ++pass_missed;
      return nullptr;
    }
    live[i] = 1;
    ++live_count;
    ++served;
    auto self = shared_from_this();  // the buffer outlives every tensor in it
    auto* data = reinterpret_cast<float*>(buffer.get() + plan.offset[i]);
    return std::shared_ptr<float>(data, [self, i](float*) {
      std::lock_guard<std::mutex> l(self->mu);
      self->live[i] = 0;
      --self->live_count;
    });
  }

  void trim() {
    std::lock_guard<std::mutex> lock(mu);
    if (live_count == 0) buffer.reset();
  }
};

namespace {
std::mutex g_arenas_mu;
std::vector<std::weak_ptr<Arena::State>>& arenas() {
  static auto* v = new std::vector<std::weak_ptr<Arena::State>>();
  return *v;
}
}  // namespace

Arena::Arena(ArenaPlan plan) : state_(std::make_shared<State>()) {
  state_->live.assign(plan.bytes.size(), 0);
  state_->plan = std::move(plan);
  std::lock_guard<std::mutex> lock(g_arenas_mu);
  auto& v = arenas();
  v.erase(std::remove_if(v.begin(), v.end(), [](const auto& w) { return w.expired(); }), v.end());
  v.push_back(state_);
}

const ArenaPlan& Arena::plan() const { return state_->plan; }
size_t Arena::served() const { return state_->served; }
size_t Arena::missed() const { return state_->pass_missed; }

ArenaScope::ArenaScope(Arena& arena) {
  {
    std::lock_guard<std::mutex> lock(arena.state_->mu);
    arena.state_->next = 0;
    arena.state_->pass_missed = 0;
  }
  prev_hook_ = set_tensor_alloc_hook(arena.state_.get());
}

ArenaScope::~ArenaScope() { set_tensor_alloc_hook(static_cast<TensorAllocHook*>(prev_hook_)); }

namespace {
bool arena_enabled() {
  static const bool on = [] {
    const char* e = std::getenv("VG_ARENA");
    return !(e && std::string(e) == "0");
  }();
  return on;
}
}  // namespace

Tensor PlannedPass::run(const std::vector<int64_t>& key, const std::function<Tensor()>& pass, bool keep_buffer) const {
  if (!arena_enabled() || dry_run_active()) return pass();
  Arena* arena = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = arenas_.find(key);
    if (it == arenas_.end()) {
      std::vector<AllocRecord> trace;
      int64_t end = 0;
      {
        DryRun dry;
        {
          Tensor out = pass();
          end = dry.now();  // what is still alive now is the result: it stays outside the arena
        }
        trace = dry.trace();
      }
      if (arenas_.size() >= 4) arenas_.clear();  // a few shapes at most (sizes, CFG on/off, tiles)
      it = arenas_.emplace(key, std::make_unique<Arena>(plan_arena(trace, end))).first;
    }
    last_ = it->second.get();
    arena = last_;
  }
  Tensor out;
  {
    ArenaScope scope(*arena);
    out = pass();
  }
  if (!keep_buffer) arena_release(*arena);
  return out;
}

void arena_release(Arena& arena) { arena.state_->trim(); }

std::optional<ArenaStats> PlannedPass::last_stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  if (!last_) return std::nullopt;
  const ArenaPlan& p = last_->plan();
  return ArenaStats{p.arena_bytes, p.live_peak_bytes, p.bytes.size(), last_->served(), last_->missed()};
}

void arena_trim_all() {
  std::vector<std::shared_ptr<Arena::State>> alive;
  {
    std::lock_guard<std::mutex> lock(g_arenas_mu);
    for (const auto& w : arenas())
      if (auto s = w.lock()) alive.push_back(std::move(s));
  }
  for (auto& s : alive) s->trim();
}

}  // namespace vg
