// The capability registry file (data/registry/models.json or a user's own).
#include "core/error.h"
#include "fuzz/fuzz_input.h"
#include "registry/registry.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const nlohmann::json j = nlohmann::json::parse(data, data + size, nullptr, false);
  if (j.is_discarded()) return 0;
  try {
    (void)vg::Registry::from_json(j, "fuzz.json");
  } catch (const vg::VgException&) {
  }
  return 0;
}
