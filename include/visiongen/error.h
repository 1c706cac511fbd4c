// Public error type: every failure the engine reports carries a stable code
// (see docs/errors.md) and a sentence that says what to do.
#pragma once
#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace vg {

enum class ErrorCode {
  kOk = 0,
  kInvalidArgument = 1,   // a parameter is out of range or malformed
  kFileNotFound = 2,      // a path does not exist
  kCorruptFile = 3,       // a model/image file is truncated or malformed
  kUnsupportedFormat = 4, // e.g. pickle checkpoints
  kUnsupportedModel = 5,  // a model family that is not implemented
  kMissingComponent = 6,  // a diffusers folder lacks unet/vae/...
  kShapeMismatch = 7,     // weights do not fit the config
  kOutOfMemory = 8,       // the request would not fit in memory
  kIoError = 9,           // reading/writing failed (disk full, permissions)
  kCancelled = 10,        // the progress callback asked to stop
  kInternal = 11,         // a bug: please report
  kBusy = 12,             // the server's queue is full: retry later
  kUnauthorized = 13,     // missing or wrong API key
  kCapabilityNotSupported = 14,  // no engine in this build runs this task/feature for this model
  kUnknownModel = 15,            // a model id that is neither a path, a registry entry nor served
  kModelNotAvailableOffline = 16,  // a Hub model that is not in the local cache
  kLoraUnsupported = 17,         // LoRA requested on an engine without LoRA support
  kModelNotConverted = 18,       // a format that must be converted first (e.g. GGUF)
  kLoraNotFound = 19,            // a LoRA name that is no file and is not in the LoRA folders
  kLoraIncompatible = 20,        // a LoRA made for another model family / with other layer shapes
  kDiskFull = 21,                // no space left (or quota/file-size limit) while writing; nothing half-written
  kQueueUnavailable = 22,        // the shared job queue (Redis, serve/worker --queue) cannot be reached
};

// Stable machine-readable name, e.g. "invalid_argument".
const char* error_code_name(ErrorCode code);

struct Error {
  ErrorCode code = ErrorCode::kInternal;
  std::string message;
  std::string to_string() const { return std::string(error_code_name(code)) + ": " + message; }
};

// Result<T> holds either a value or an Error; never throws across the API.
template <typename T>
class Result {
 public:
  Result(T value) : v_(std::move(value)) {}
  Result(Error error) : v_(std::move(error)) {}
  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() { return std::get<0>(v_); }
  const T& value() const { return std::get<0>(v_); }
  T& operator*() { return value(); }
  T* operator->() { return &value(); }
  const Error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

class Status {
 public:
  Status() = default;
  Status(Error e) : e_(std::move(e)) {}
  bool ok() const { return !e_.has_value(); }
  explicit operator bool() const { return ok(); }
  const Error& error() const { return *e_; }

 private:
  std::optional<Error> e_;
};

}  // namespace vg
