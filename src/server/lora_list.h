// LoRAs over HTTP: the JSON `loras` array of the native API and the listing
// of the server's LoRA folders (GET /v1/loras).
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace vg::server {

// [{"name": "x", "weight": 0.8}, ...] (weight optional, 1) -> "x:0.8,..."
// (GenerateParams::loras). A string passes through. Throws invalid_argument
// naming the bad entry otherwise.
std::string loras_to_string(const nlohmann::json& loras);

// {"object": "list", "data": [{"name", "path", "size_bytes", "family": "sd1"|"sdxl"|"unknown"}...]}:
// the .safetensors files directly inside the folders, by name.
nlohmann::json list_loras(const std::vector<std::string>& folders);

}  // namespace vg::server
