// The /v1/images/edits form as the route reads it (httplib has parsed the
// multipart body): fields and files from the bytes, split at "--vg\n" into
// parts "name=content"; a name ending in '@' is a file (image, image[], mask).
// The model family is the first byte's pick.
#include "core/error.h"
#include "core/params_json.h"
#include "fuzz/fuzz_input.h"
#include "server/openai_request.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const char* kFamilies[] = {"sd1", "sdxl", "flux", "zimage", ""};
  if (size == 0) return 0;
  const std::string family = kFamilies[data[0] % 5];
  const std::string text = vg::fuzz::as_text(data + 1, size - 1);
  httplib::MultipartFormDataMap form;
  for (size_t at = 0; at <= text.size();) {
    size_t end = text.find("--vg\n", at);
    if (end == std::string::npos) end = text.size();
    const std::string part = text.substr(at, end - at);
    const size_t eq = part.find('=');
    std::string name = part.substr(0, eq), filename;
    if (!name.empty() && name.back() == '@') name.pop_back(), filename = "upload";
    const std::string content = eq == std::string::npos ? "" : part.substr(eq + 1);
    form.emplace(name,
                 httplib::MultipartFormData{name, content, filename, filename.empty() ? "" : "image/png"});
    at = end + 5;
  }
  try {
    const auto r = vg::server::openai_edit_request(form, [&](const std::string&) { return family; });
    (void)vg::validate_params(r.job.params);
    (void)vg::params_to_json(r.job.params).dump();
  } catch (const vg::VgException&) {
  }
  return 0;
}
