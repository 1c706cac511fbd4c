// A1111 request bodies as the /sdapi/v1 routes read them: parse_json_body,
// then (by the first byte) txt2img, img2img (base64 init image and mask
// decoding) or png-info (base64 PNG, its text, the infotext parser), with the
// model family the first byte also picks; then validation.
#include "core/error.h"
#include "core/params_json.h"
#include "fuzz/fuzz_input.h"
#include "server/a1111_request.h"
#include "server/http_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const char* kFamilies[] = {"sd1", "sdxl", "flux", "sd3", ""};
  if (size == 0) return 0;
  const std::string family = kFamilies[data[0] % 5];
  const int route = data[0] / 5 % 3;  // 0 txt2img, 1 img2img, 2 png-info
  try {
    const nlohmann::json body = vg::server::parse_json_body(vg::fuzz::as_text(data + 1, size - 1));
    if (route == 2) {
      (void)vg::server::a1111_png_info(body).dump();
      return 0;
    }
    const auto r = vg::server::a1111_request(body, route == 1, "default-model",
                                             [&](const std::string&) { return family; });
    (void)vg::validate_params(r.params);
    (void)vg::params_to_json(r.params).dump();
  } catch (const vg::VgException&) {
  }
  return 0;
}
