// `visiongen convert SRC OUT.gguf --type T`: a single-file checkpoint (or a
// diffusers SD1/SDXL folder, first mapped to the original checkpoint names)
// written as GGUF the way stable-diffusion.cpp's `-M convert` writes it, plus
// a JSON manifest OUT.gguf.json recording where the weights came from.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace vg {

// "q8_0", "Q4_K", "f16", ... -> ggml type id. The types convert can write:
// q8_0 q6_k q5_k q4_k q3_k q2_k q5_1 q5_0 q4_1 q4_0 f16 bf16 f32 (any case).
// Throws invalid_argument naming the choices.
int gguf_type_from_name(const std::string& name);
const std::vector<std::string>& gguf_convert_type_names();

// stable-diffusion.cpp's tensor_should_be_converted: whether a tensor of this
// name and ggml shape (ne[0] innermost) gets the requested type; otherwise it
// keeps its source type.
bool sdcpp_should_convert(const std::string& name, const std::vector<int64_t>& ne, int target_type);

// The command line that converts `src` (for model_not_converted messages).
std::string gguf_convert_command(const std::string& src, const std::string& out, const std::string& type,
                                 bool unet_only = false);

struct GgufConvertOptions {
  std::string type = "q8_0";
  bool unet_only = false;  // only model.diffusion_model.* tensors
};

struct GgufConvertResult {
  std::string manifest_path;
  int64_t tensors = 0;
  std::map<std::string, int64_t> type_counts;  // "Q8_0" -> n
  uint64_t bytes = 0;                          // size of the GGUF file
};

// Throws invalid_argument (type), file_not_found, unsupported_model/format,
// io_error (output folder missing or unwritable, disk full; no partial file
// is left, neither GGUF nor manifest).
GgufConvertResult convert_to_gguf(const std::string& src, const std::string& out_path,
                                  const GgufConvertOptions& opt);

}  // namespace vg
