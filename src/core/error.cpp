#include "core/error.h"

namespace vg {

const char* error_code_name(ErrorCode code) {
  switch (code) {
    case ErrorCode::kOk: return "ok";
    case ErrorCode::kInvalidArgument: return "invalid_argument";
    case ErrorCode::kFileNotFound: return "file_not_found";
    case ErrorCode::kCorruptFile: return "corrupt_file";
    case ErrorCode::kUnsupportedFormat: return "unsupported_format";
    case ErrorCode::kUnsupportedModel: return "unsupported_model";
    case ErrorCode::kMissingComponent: return "missing_component";
    case ErrorCode::kShapeMismatch: return "shape_mismatch";
    case ErrorCode::kOutOfMemory: return "out_of_memory";
    case ErrorCode::kIoError: return "io_error";
    case ErrorCode::kCancelled: return "cancelled";
    case ErrorCode::kInternal: return "internal";
    case ErrorCode::kBusy: return "busy";
    case ErrorCode::kUnauthorized: return "unauthorized";
    case ErrorCode::kCapabilityNotSupported: return "capability_not_supported";
    case ErrorCode::kUnknownModel: return "unknown_model";
    case ErrorCode::kModelNotAvailableOffline: return "model_not_available_offline";
    case ErrorCode::kLoraUnsupported: return "lora_unsupported_engine";
    case ErrorCode::kModelNotConverted: return "model_not_converted";
    case ErrorCode::kLoraNotFound: return "lora_not_found";
    case ErrorCode::kLoraIncompatible: return "lora_incompatible";
    case ErrorCode::kDiskFull: return "disk_full";
    case ErrorCode::kQueueUnavailable: return "queue_unavailable";
  }
  return "unknown";
}

}  // namespace vg
