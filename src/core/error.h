// Internal error plumbing: deep code throws VgException; the public API
// boundary (Engine, CLI) converts it to vg::Error so nothing escapes.
#pragma once
#include <stdexcept>
#include <string>

#include "visiongen/error.h"

namespace vg {

class VgException : public std::runtime_error {
 public:
  VgException(ErrorCode code, const std::string& message)
      : std::runtime_error(message), code_(code) {}
  ErrorCode code() const { return code_; }
  Error to_error() const { return Error{code_, what()}; }

 private:
  ErrorCode code_;
};

[[noreturn]] inline void fail(ErrorCode code, const std::string& message) {
  throw VgException(code, message);
}

// Runs fn and converts any exception into an Error.
template <typename Fn>
auto guard(Fn&& fn) -> Result<decltype(fn())> {
  try {
    return fn();
  } catch (const VgException& e) {
    return e.to_error();
  } catch (const std::bad_alloc&) {
    return Error{ErrorCode::kOutOfMemory,
                 "out of memory; lower the width/height or batch size, or free memory"};
  } catch (const std::exception& e) {
    return Error{ErrorCode::kInternal, std::string("internal error: ") + e.what() +
                                           " (please report this with the command you ran)"};
  }
}

}  // namespace vg
