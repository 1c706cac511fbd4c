// GenerateParams <-> JSON, driven by one member table so the HTTP APIs,
// the metadata and the CLI agree on names. Strict mode (the native API)
// rejects unknown fields and wrong types by name.
#pragma once
#include <nlohmann/json.hpp>

#include "visiongen/params.h"

namespace vg {

Status params_from_json(const nlohmann::json& j, GenerateParams* p, bool strict);
nlohmann::json params_to_json(const GenerateParams& p);
// Names of every JSON field (for docs and error messages).
std::vector<std::string> params_json_fields();
// The string field of that JSON name (null when there is none): lets the CLI
// bind flags through the same table.
std::string* params_string_field(GenerateParams& p, const std::string& name);
float* params_float_field(GenerateParams& p, const std::string& name);

}  // namespace vg
