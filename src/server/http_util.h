// Shared pieces of the HTTP layer: error bodies in the OpenAI shape, status
// mapping, base64, image decoding from request fields.
#pragma once
#include <httplib.h>

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "visiongen/visiongen.h"

namespace vg::server {

int http_status(ErrorCode code);
// {"error":{"message","type","param","code"}}: OpenAI's shape; code is our stable name.
nlohmann::json error_body(const Error& e);
// JSON text for a response: bytes that are not UTF-8 (a raw URL path, a
// client's bytes quoted in an error) become U+FFFD instead of throwing.
std::string json_text(const nlohmann::json& j);
void send_error(httplib::Response& res, const Error& e);
void send_json(httplib::Response& res, const nlohmann::json& j, int status = 200);

std::string base64_encode(const std::string& bytes);
// The media type of an artifact from its first bytes (PNG, JPEG, WebP, GIF,
// MP4, WebM; application/octet-stream otherwise).
std::string sniff_mime(const std::string& bytes);
// Accepts plain base64 and data: URLs; nullopt when malformed.
std::optional<std::string> base64_decode(const std::string& text);

// Decodes a base64 image field (plain or data: URL). Throws VgException.
Image decode_image_field(const std::string& b64, const std::string& field);
// "WxH" -> (w, h); "auto" or "" -> (0, 0). Throws invalid_argument.
std::pair<int, int> parse_size(const std::string& s);

// Request fields given as a JSON value or a form string (multipart): an
// integer number or integer text, in range; a finite number or number text
// that fits a float. Anything else is invalid_argument naming `name`.
int json_int(const nlohmann::json& v, const char* name);
int64_t json_int64(const nlohmann::json& v, const char* name);
float json_number(const nlohmann::json& v, const char* name);

// A model id -> its family ("sd1", "flux", ...; "" when unknown): all the
// request parsers need to know of the models (the route asks the pool).
using FamilyOf = std::function<std::string(const std::string& model)>;

// Whether `s` is UTF-8 as a JSON response needs it (strict: no overlong forms or surrogates).
bool valid_utf8(const std::string& s);

// Parses a JSON body or throws invalid_argument with the parse position.
nlohmann::json parse_json_body(const std::string& body);

}  // namespace vg::server
