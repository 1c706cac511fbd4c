#include "server/http_util.h"

#include <cctype>
#include <cfloat>
#include <charconv>
#include <cmath>
#include <cstring>
#include <string_view>

#include <openssl/evp.h>

#include "core/error.h"
#include "io/image_decode.h"

namespace vg::server {

int http_status(ErrorCode code) {
  switch (code) {
    case ErrorCode::kOk: return 200;
    case ErrorCode::kInvalidArgument:
    case ErrorCode::kCorruptFile:
    case ErrorCode::kUnsupportedFormat:
    case ErrorCode::kOutOfMemory: return 400;
    case ErrorCode::kFileNotFound: return 404;
    case ErrorCode::kUnsupportedModel:
    case ErrorCode::kShapeMismatch:
    case ErrorCode::kMissingComponent: return 422;
    case ErrorCode::kCancelled: return 409;
    case ErrorCode::kBusy: return 429;
    case ErrorCode::kUnauthorized: return 401;
    case ErrorCode::kCapabilityNotSupported:
    case ErrorCode::kLoraUnsupported:
    case ErrorCode::kLoraIncompatible:
    case ErrorCode::kModelNotConverted: return 422;
    case ErrorCode::kUnknownModel:
    case ErrorCode::kModelNotAvailableOffline:
    case ErrorCode::kLoraNotFound: return 404;
    case ErrorCode::kDiskFull: return 507;
    case ErrorCode::kQueueUnavailable: return 503;
    case ErrorCode::kIoError:
    case ErrorCode::kInternal: return 500;
  }
  return 500;
}

namespace {

const char* error_type(int status) {
  switch (status) {
    case 400: return "invalid_request_error";
    case 401: return "authentication_error";
    case 404: return "not_found_error";
    case 409: return "conflict_error";
    case 422: return "unprocessable_entity_error";
    case 429: return "rate_limit_error";
    default: return "server_error";
  }
}

// The parameter a message is about: messages start with the field name.
nlohmann::json param_of(const Error& e) {
  static const char* kNames[] = {"prompt", "negative_prompt", "width", "height", "steps", "cfg_scale", "seed",
                                 "clip_skip", "sampler", "scheduler", "rng", "eta", "s_noise", "s_churn",
                                 "batch_size", "strength", "mask_blur", "resize_mode", "paste_back", "vae_tiling", "size",
                                 "model", "n", "response_format", "image", "mask", "init_image"};
  if (e.code != ErrorCode::kInvalidArgument) return nullptr;
  for (const char* n : kNames) {
    const std::string s = n;
    if (e.message.rfind(s + " ", 0) == 0 || e.message.find("'" + s + "'") != std::string::npos) return s;
  }
  return nullptr;
}

}  // namespace

nlohmann::json error_body(const Error& e) {
  const int st = http_status(e.code);
  return {{"error", {{"message", e.message}, {"type", error_type(st)}, {"param", param_of(e)}, {"code", error_code_name(e.code)}}}};
}

std::string json_text(const nlohmann::json& j) { return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace); }

void send_json(httplib::Response& res, const nlohmann::json& j, int status) {
  res.status = status;
  res.set_content(json_text(j), "application/json");
}

void send_error(httplib::Response& res, const Error& e) {
  const int status = http_status(e.code);
  if (status == 429 || status == 503) res.set_header("Retry-After", "2");  // a full or unreachable queue: try again soon
  send_json(res, error_body(e), status);
}

std::string base64_encode(const std::string& in) {
  std::string out(4 * ((in.size() + 2) / 3), '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(in.data()), static_cast<int>(in.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

std::optional<std::string> base64_decode(const std::string& text) {
  std::string s = text;
  if (s.rfind("data:", 0) == 0) {
    const size_t comma = s.find(',');
    if (comma == std::string::npos || s.substr(0, comma).find(";base64") == std::string::npos) return std::nullopt;
    s = s.substr(comma + 1);
  }
  std::string clean;
  clean.reserve(s.size());
  for (char c : s)
    if (!std::isspace(static_cast<unsigned char>(c))) clean += c;
  if (clean.empty() || clean.size() % 4 != 0) return std::nullopt;
  std::string out(clean.size() / 4 * 3, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(clean.data()), static_cast<int>(clean.size()));
  if (n < 0) return std::nullopt;
  size_t pad = 0;
  if (clean.size() >= 2 && clean[clean.size() - 1] == '=') ++pad;
  if (clean.size() >= 2 && clean[clean.size() - 2] == '=') ++pad;
  out.resize(static_cast<size_t>(n) - pad);
  return out;
}

Image decode_image_field(const std::string& b64, const std::string& field) {
  auto bytes = base64_decode(b64);
  if (!bytes) fail(ErrorCode::kInvalidArgument, "'" + field + "' is not valid base64 image data");
  return decode_image(*bytes, field);
}

std::pair<int, int> parse_size(const std::string& s) {
  if (s.empty() || s == "auto") return {0, 0};
  const size_t x = s.find('x');
  try {
    if (x == std::string::npos) throw std::invalid_argument(s);
    size_t a = 0, b = 0;
    const int w = std::stoi(s.substr(0, x), &a), h = std::stoi(s.substr(x + 1), &b);
    if (a != x || b != s.size() - x - 1 || w <= 0 || h <= 0) throw std::invalid_argument(s);
    return {w, h};
  } catch (const std::exception&) {
    fail(ErrorCode::kInvalidArgument, "size '" + s + "' must look like 512x512 (or auto)");
  }
}

nlohmann::json parse_json_body(const std::string& body) {
  // No request has more than a few levels; deeper nesting is refused while
  // parsing (before a deep tree is built).
  constexpr int kMaxDepth = 32;
  bool too_deep = false;
  const auto limit = [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json&) {
    if (depth > kMaxDepth && (event == nlohmann::json::parse_event_t::object_start ||
                              event == nlohmann::json::parse_event_t::array_start))
      too_deep = true;
    return !too_deep;
  };
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(body, limit);
  } catch (const nlohmann::json::exception& e) {  // parse_error, and out_of_range for numbers like 1e99999
    if (!too_deep) fail(ErrorCode::kInvalidArgument, std::string("the request body is not valid JSON: ") + e.what());
  }
  if (too_deep)
    fail(ErrorCode::kInvalidArgument, "the request body nests JSON more than " + std::to_string(kMaxDepth) +
                                          " levels deep; send a flat object of parameters");
  return j;
}

namespace {

// Form text as JSON would give it: surrounding blanks and a leading '+' are allowed.
std::string_view number_text(const std::string& s) {
  std::string_view t = s;
  while (!t.empty() && std::isspace(static_cast<unsigned char>(t.front()))) t.remove_prefix(1);
  while (!t.empty() && std::isspace(static_cast<unsigned char>(t.back()))) t.remove_suffix(1);
  if (t.size() > 1 && t.front() == '+' && t[1] != '-') t.remove_prefix(1);
  return t;
}

}  // namespace

int64_t json_int64(const nlohmann::json& v, const char* name) {
  if (v.is_number_unsigned() && v.get<uint64_t>() <= static_cast<uint64_t>(INT64_MAX)) return v.get<int64_t>();
  if (v.is_number_integer() && !v.is_number_unsigned()) return v.get<int64_t>();
  if (v.is_string()) {
    const std::string_view t = number_text(v.get_ref<const std::string&>());
    int64_t x = 0;
    const auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), x);
    if (ec == std::errc() && end == t.data() + t.size() && !t.empty()) return x;
  }
  fail(ErrorCode::kInvalidArgument, std::string("'") + name + "' must be an integer (a 64-bit whole number)");
}

int json_int(const nlohmann::json& v, const char* name) {
  const int64_t x = json_int64(v, name);
  if (x < INT32_MIN || x > INT32_MAX)
    fail(ErrorCode::kInvalidArgument, std::string("'") + name + "' must be an integer between " +
                                          std::to_string(INT32_MIN) + " and " + std::to_string(INT32_MAX));
  return static_cast<int>(x);
}

float json_number(const nlohmann::json& v, const char* name) {
  double x = NAN;
  if (v.is_number()) x = v.get<double>();
  if (v.is_string()) {
    const std::string_view t = number_text(v.get_ref<const std::string&>());
    const auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), x);
    if (ec != std::errc() || end != t.data() + t.size() || t.empty()) x = NAN;
  }
  if (!std::isfinite(x) || std::fabs(x) > FLT_MAX)
    fail(ErrorCode::kInvalidArgument, std::string("'") + name + "' must be a finite number (JSON number or number text)");
  return static_cast<float>(x);
}

bool valid_utf8(const std::string& s) {
  try {
    (void)nlohmann::json(s).dump();  // nlohmann checks as strictly as its responses need
    return true;
  } catch (const nlohmann::json::type_error&) {
    return false;
  }
}

std::string sniff_mime(const std::string& b) {
  auto at = [&](size_t off, const char* sig) { return b.compare(off, std::strlen(sig), sig) == 0; };
  if (at(0, "\x89PNG")) return "image/png";
  if (at(0, "\xFF\xD8")) return "image/jpeg";
  if (at(0, "GIF8")) return "image/gif";
  if (at(0, "RIFF") && at(8, "WEBP")) return "image/webp";
  if (b.size() > 8 && at(4, "ftyp")) return "video/mp4";
  if (at(0, "\x1A\x45\xDF\xA3")) return "video/webm";
  return "application/octet-stream";
}

}  // namespace vg::server
