// The OpenAI image requests as the engine takes them: the JSON body of
// /v1/images/generations and the multipart form of /v1/images/edits. Kept
// apart from the routes so they can be tested and fuzzed without a server.
#pragma once
#include <httplib.h>

#include <nlohmann/json.hpp>
#include <string>

#include "server/http_util.h"
#include "server/jobs.h"

namespace vg::server {

struct OpenAiRequest {
  JobRequest job;
  std::string response_format = "b64_json";
};

// `fields` holds JSON values (generations) or form strings (edits). Throws
// VgException (invalid_argument naming the field) for anything it cannot take.
OpenAiRequest openai_request(const nlohmann::json& fields, const FamilyOf& family_of);

// The edits form: plain fields as above, `image` (or `image[]`) and an
// optional `mask` decoded (OpenAI masks mark the area to edit with alpha).
OpenAiRequest openai_edit_request(const httplib::MultipartFormDataMap& form, const FamilyOf& family_of);

}  // namespace vg::server
