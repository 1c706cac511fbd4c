// OpenAI image request bodies (/v1/images/generations) as the route reads
// them: parse_json_body, openai_request with the model family the first byte
// picks (guidance_scale means a different field per family), validation.
#include "core/error.h"
#include "core/params_json.h"
#include "fuzz/fuzz_input.h"
#include "server/http_util.h"
#include "server/openai_request.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const char* kFamilies[] = {"sd1", "sdxl", "flux", "zimage", ""};
  if (size == 0) return 0;
  const std::string family = kFamilies[data[0] % 5];
  try {
    const auto r =
        vg::server::openai_request(vg::server::parse_json_body(vg::fuzz::as_text(data + 1, size - 1)),
                                   [&](const std::string&) { return family; });
    (void)vg::validate_params(r.job.params);
    (void)vg::params_to_json(r.job.params).dump();
  } catch (const vg::VgException&) {
  }
  return 0;
}
