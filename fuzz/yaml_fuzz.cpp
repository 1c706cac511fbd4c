// YAML the engine reads: the A1111 `name.yaml` beside a checkpoint and preset
// files (user presets replace built-ins), the first input byte choosing which.
#include "core/error.h"
#include "fuzz/fuzz_input.h"
#include "pipelines/a1111_yaml.h"
#include "registry/presets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string text = vg::fuzz::as_text(data + 1, size - 1);
  try {
    if (data[0] & 1) (void)vg::parse_a1111_yaml(text, "fuzz.yaml");
    else vg::check_preset_text(text, "fuzz.yaml");
  } catch (const vg::VgException&) {
  }
  return 0;
}
