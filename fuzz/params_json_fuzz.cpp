// Request bodies as the native API reads them: JSON (parse_json_body's
// limits), then GenerateParams through the params table (strict and lenient),
// validation and the infotext written into images.
#include "core/error.h"
#include "core/params_json.h"
#include "fuzz/fuzz_input.h"
#include "server/http_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const nlohmann::json j = vg::server::parse_json_body(vg::fuzz::as_text(data, size));
    for (bool strict : {true, false}) {
      vg::GenerateParams p;
      if (!vg::params_from_json(j, &p, strict)) continue;
      if (vg::validate_params(p)) (void)vg::format_infotext(p, 1, p.width, p.height, "fuzz", "0123456789");
      (void)vg::params_to_json(p).dump();
    }
  } catch (const vg::VgException&) {
  }
  return 0;
}
