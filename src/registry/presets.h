// Presets: YAML files per family / mode / task that FILL what a request left
// out and never override what the user set. Built-ins ship with the library
// (data/presets); files in $VG_PRESET_DIR or ~/.config/visiongen/presets
// replace built-ins of the same name.
#pragma once
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "visiongen/params.h"

namespace vg {

struct PresetReport {
  nlohmann::json applied_patch = nlohmann::json::object();  // exactly the fields that were filled
  std::string preset;                                       // file name used ("" = none)
  std::string mode_ignored_reason;                          // set when the mode has no preset here
};

// family: registry family (stable-diffusion-1-x, ...); mode: normal | lcm |
// turbo | lightning; task: text_to_image, ... ; user_set: JSON names of the
// fields the user gave (they are never changed).
PresetReport apply_preset(const std::string& family, const std::string& mode, const std::string& task,
                          const std::set<std::string>& user_set, GenerateParams* p);

// Parses a preset file's text and checks its fill against the params table;
// throws corrupt_file naming `name` (what a user preset file must pass).
void check_preset_text(const std::string& text, const std::string& name);

}  // namespace vg
