// A1111/Forge txt2img and img2img bodies as the engine takes them, apart from
// the routes so they can be tested and fuzzed without a server.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "server/http_util.h"
#include "server/jobs.h"

namespace vg::server {

// `default_model` is the checkpoint A1111 would use (POST /sdapi/v1/options,
// else the server's default); override_settings.sd_model_checkpoint wins over
// it. Throws VgException (invalid_argument naming the field; file_not_found
// for an img2img body without init_images, as A1111 answers).
JobRequest a1111_request(const nlohmann::json& body, bool img2img, const std::string& default_model,
                         const FamilyOf& family_of);

// POST /sdapi/v1/png-info: {"image": base64 PNG or data: URL} -> {"info": the
// PNG's "parameters" text ("" if none), "items": {} (A1111 lists the other
// text chunks there; only "parameters" is read), "parameters": the text
// parsed as parse_infotext does}. Throws VgException for a malformed body.
nlohmann::json a1111_png_info(const nlohmann::json& body);

}  // namespace vg::server
