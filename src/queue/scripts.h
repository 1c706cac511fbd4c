// The Lua scripts that change a queued job atomically in Redis: submit and cancel (a
// front-end), start, finish and hand back (a worker). Each returns what the
// caller needs to know; see scripts.cpp for the KEYS/ARGV of each.
#pragma once

namespace vg::queue {

extern const char* const kSubmitScript;
extern const char* const kCancelScript;
extern const char* const kStartScript;
extern const char* const kProgressScript;
extern const char* const kFinishScript;
extern const char* const kHandBackScript;

}  // namespace vg::queue
