#include "server/lora_list.h"

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <sstream>

#include "core/error.h"
#include "lora/lora_manager.h"
#include "io/safetensors.h"

namespace vg::server {

namespace fs = std::filesystem;

std::string loras_to_string(const nlohmann::json& loras) {
  if (loras.is_null()) return "";
  if (loras.is_string()) return loras.get<std::string>();
  if (!loras.is_array())
    fail(ErrorCode::kInvalidArgument,
         "field 'loras' must be an array of {\"name\": string, \"weight\": number} objects (or a "
         "\"name:weight,...\" string)");
  std::string out;
  for (size_t i = 0; i < loras.size(); ++i) {
    const auto& e = loras[i];
    const std::string at = "loras[" + std::to_string(i) + "]";
    if (!e.is_object())
      fail(ErrorCode::kInvalidArgument, at + " must be an object {\"name\": string, \"weight\": number}");
    for (auto it = e.begin(); it != e.end(); ++it)
      if (it.key() != "name" && it.key() != "weight")
        fail(ErrorCode::kInvalidArgument,
             at + " has an unknown field '" + it.key() + "' (allowed: name, weight)");
    if (!e.contains("name") || !e["name"].is_string() || e["name"].get<std::string>().empty())
      fail(ErrorCode::kInvalidArgument, at + ".name must be a non-empty string");
    const std::string name = e["name"].get<std::string>();
    if (name.find(',') != std::string::npos)
      fail(ErrorCode::kInvalidArgument, at + ".name must not contain ','");
    double w = 1.0;
    if (e.contains("weight")) {
      if (!e["weight"].is_number() || !std::isfinite(e["weight"].get<double>()))
        fail(ErrorCode::kInvalidArgument, at + ".weight must be a finite number");
      w = e["weight"].get<double>();
    }
    std::ostringstream os;
    os << name << ":" << w;
    out += (out.empty() ? "" : ",") + os.str();
  }
  return out;
}


namespace {

// From the key names alone (the header is all that is read).
std::string guess_family(const std::string& path) {
  try {
    auto f = SafetensorsFile::open(path);
    bool te = false, te2 = false, sgm_unet = false;
    for (auto& [k, i] : f->tensors()) {
      te2 |=
          k.rfind("lora_te2_", 0) == 0 || k.rfind("lora_te1_", 0) == 0 || k.rfind("text_encoder_2.", 0) == 0;
      sgm_unet |= k.rfind("lora_unet_input_blocks_", 0) == 0 || k.rfind("lora_unet_output_blocks_", 0) == 0 ||
                  k.find("add_embedding") != std::string::npos;
      te |= k.rfind("lora_te_", 0) == 0 || k.rfind("text_encoder.", 0) == 0;
    }
    if (te2 || sgm_unet) return "sdxl";
    if (te) return "sd1";
  } catch (const VgException&) {
    return "invalid";
  }
  return "unknown";
}

}  // namespace

nlohmann::json list_loras(const std::vector<std::string>& folders) {
  std::map<std::string, nlohmann::json> byname;  // the first folder wins, as name lookup does
  for (const auto& d : folders) {
    std::error_code ec;
    for (auto& e : fs::directory_iterator(d, ec)) {
      if (!e.is_regular_file(ec) || e.path().extension() != ".safetensors") continue;
      const std::string name = e.path().stem().string();
      if (byname.count(name)) continue;
      byname[name] = {{"name", name},
                      {"path", e.path().string()},
                      {"size_bytes", e.file_size(ec)},
                      {"family", guess_family(e.path().string())}};
    }
  }
  nlohmann::json data = nlohmann::json::array();
  for (auto& [n, j] : byname) data.push_back(j);
  return {{"object", "list"}, {"data", data}, {"folders", folders}};
}

}  // namespace vg::server
