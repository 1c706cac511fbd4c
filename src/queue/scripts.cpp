#include "queue/scripts.h"

namespace vg::queue {

// KEYS: job hash, model stream, models set. ARGV: ttl seconds, model,
// request JSON, created (unix seconds). Creates the consumer group when the
// stream is new, queues the job, returns the stream entry id.
const char* const kSubmitScript = R"lua(
if redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('XGROUP', 'CREATE', KEYS[2], 'workers', '0', 'MKSTREAM')
end
local entry = redis.call('XADD', KEYS[2], '*', 'job', string.sub(KEYS[1], 8))
redis.call('HSET', KEYS[1], 'status', 'queued', 'phase', 'queued', 'model', ARGV[2], 'request', ARGV[3],
           'created', ARGV[4], 'step', '0', 'steps', '0', 'attempts', '0', 'entry', entry)
redis.call('EXPIRE', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[2])
return entry
)lua";

// KEYS: job hash, events stream, model stream. ARGV: events max, the
// cancelled state JSON (also the event's data), ttl seconds.
// Returns {2, event id} when a queued job was cancelled here, {1} when a
// running job was flagged (its worker stops at the next step), {0} when the
// job is unknown or already finished.
const char* const kCancelScript = R"lua(
local st = redis.call('HGET', KEYS[1], 'status')
if not st or st == 'completed' or st == 'failed' or st == 'cancelled' then return {0} end
redis.call('HSET', KEYS[1], 'cancel', '1')
if st ~= 'queued' then return {1} end
redis.call('HSET', KEYS[1], 'status', 'cancelled', 'phase', 'cancelled', 'state', ARGV[2])
local entry = redis.call('HGET', KEYS[1], 'entry')
if entry then redis.call('XDEL', KEYS[3], entry) end
local id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[1], '*', 'type', 'cancelled', 'data', ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[3])
return {2, id}
)lua";

// KEYS: job hash, stats hash. ARGV: worker name, max attempts.
// Returns {'missing'}, {'finished'}, {'dead', attempts, last worker} or
// {'run', attempts, request JSON, created}.
const char* const kStartScript = R"lua(
local f = redis.call('HMGET', KEYS[1], 'status', 'request', 'worker', 'created')
if not f[1] then return {'missing'} end
if f[1] == 'completed' or f[1] == 'failed' or f[1] == 'cancelled' then return {'finished'} end
local attempts = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
if attempts > 1 then redis.call('HINCRBY', KEYS[2], 'reclaims', 1) end
if attempts > tonumber(ARGV[2]) then return {'dead', attempts - 1, f[3] or ''} end
redis.call('HSET', KEYS[1], 'status', 'loading', 'phase', 'loading', 'worker', ARGV[1])
return {'run', attempts, f[2], f[4] or '0'}
)lua";

// KEYS: job hash, events stream. ARGV: event type, event JSON, events max,
// status, phase, step, steps ('' status = a preview: no state change).
// Returns '1' when the job should stop (cancelled, or finished by another
// worker), else ''.
const char* const kProgressScript = R"lua(
local f = redis.call('HMGET', KEYS[1], 'status', 'cancel')
if not f[1] or f[1] == 'completed' or f[1] == 'failed' or f[1] == 'cancelled' then return '1' end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'type', ARGV[1], 'data', ARGV[2])
if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[1], 'status', ARGV[4], 'phase', ARGV[5], 'step', ARGV[6], 'steps', ARGV[7])
end
return f[2] or ''
)lua";

// KEYS: job hash, events stream, model stream, stats hash, dead stream.
// ARGV: entry id, status, state JSON (also the final event's data), event
// type, events max, ttl seconds, dead-letter error ('' = none), model.
// The first finish of a job wins (returns 1); a later one (a job run twice
// after a reclaim) only acknowledges its entry (returns 0).
const char* const kFinishScript = R"lua(
local st = redis.call('HGET', KEYS[1], 'status')
local won = 0
if st and st ~= 'completed' and st ~= 'failed' and st ~= 'cancelled' then
  redis.call('HSET', KEYS[1], 'status', ARGV[2], 'phase', ARGV[2], 'state', ARGV[3])
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '*', 'type', ARGV[4], 'data', ARGV[3])
  redis.call('EXPIRE', KEYS[1], ARGV[6])
  redis.call('EXPIRE', KEYS[2], ARGV[6])
  redis.call('HINCRBY', KEYS[4], ARGV[2], 1)
  if ARGV[7] ~= '' then
    redis.call('XADD', KEYS[5], 'MAXLEN', '~', '100000', '*', 'job', string.sub(KEYS[1], 8), 'model', ARGV[8], 'error', ARGV[7])
    redis.call('HINCRBY', KEYS[4], 'dead_letters', 1)
  end
  won = 1
end
redis.call('XACK', KEYS[3], 'workers', ARGV[1])
redis.call('XDEL', KEYS[3], ARGV[1])
return won
)lua";

// KEYS: job hash, events stream. ARGV: events max, event JSON.
// A worker shutting down gives its job back: queued again, this attempt not
// counted (the caller then marks the stream entry idle so another worker
// reclaims it at once).
const char* const kHandBackScript = R"lua(
local st = redis.call('HGET', KEYS[1], 'status')
if not st or st == 'completed' or st == 'failed' or st == 'cancelled' then return 0 end
redis.call('HSET', KEYS[1], 'status', 'queued', 'phase', 'queued', 'step', '0')
redis.call('HINCRBY', KEYS[1], 'attempts', -1)
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[1], '*', 'type', 'progress', 'data', ARGV[2])
return 1
)lua";

}  // namespace vg::queue
