#include "pipelines/gguf_convert.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <regex>

#include "core/error.h"
#include "core/hash.h"
#include "io/atomic_file.h"
#include "io/gguf_writer.h"
#include "io/tensor_file.h"
#include "io/weights.h"
#include "pipelines/ldm_checkpoint.h"
#include "quant/ggml_types.h"
#include "quant/quantize.h"
#include "visiongen/visiongen.h"

namespace vg {

namespace fs = std::filesystem;

namespace {

const std::vector<std::pair<std::string, int>>& type_table() {
  static const std::vector<std::pair<std::string, int>> t = {
      {"q8_0", kGgmlQ8_0}, {"q6_k", kGgmlQ6_K}, {"q5_k", kGgmlQ5_K}, {"q4_k", kGgmlQ4_K}, {"q3_k", kGgmlQ3_K},
      {"q2_k", kGgmlQ2_K}, {"q5_1", kGgmlQ5_1}, {"q5_0", kGgmlQ5_0}, {"q4_1", kGgmlQ4_1}, {"q4_0", kGgmlQ4_0},
      {"f16", kGgmlF16},   {"bf16", kGgmlBF16}, {"f32", kGgmlF32}};
  return t;
}

bool ends_with(const std::string& s, const std::string& e) {
  return s.size() >= e.size() && s.compare(s.size() - e.size(), e.size(), e) == 0;
}

// ggml type of a plain source dtype; -1 when the tensor is not float data.
int source_ggml_type(const TensorInfo& t) {
  if (t.ggml_type >= 0) return t.ggml_type == kGgmlF64 ? kGgmlF32 : t.ggml_type;
  switch (t.dtype) {
    case DType::kF32: return kGgmlF32;
    case DType::kF16: return kGgmlF16;
    case DType::kBF16: return kGgmlBF16;
    case DType::kF64: return kGgmlF32;  // ggml files hold no f64 weights
    default: return -1;
  }
}

// Where the source came from: a Hub snapshot (repo + revision) or a file digest.
nlohmann::json source_json(const std::string& src) {
  nlohmann::json j;
  const std::string abs = fs::weakly_canonical(fs::absolute(src)).string();
  j["path"] = abs;
  static const std::regex hub(R"(/models--([^/]+?)--([^/]+)/snapshots/([0-9a-f]{40})(/|$))");
  std::smatch m;
  if (std::regex_search(abs, m, hub)) {
    j["hub_repo"] = m[1].str() + "/" + m[2].str();
    j["hub_revision"] = m[3].str();
  }
  if (fs::is_directory(src)) {
    nlohmann::json files = nlohmann::json::object();
    for (const auto& e : fs::recursive_directory_iterator(src))
      if (e.is_regular_file() && e.path().extension() == ".safetensors")
        files[fs::relative(e.path(), src).string()] = sha256_file_hex(e.path().string());
    j["sha256"] = files;
  } else {
    j["sha256"] = sha256_file_hex(src);
  }
  return j;
}

// A temp single file made from a diffusers folder; removed on scope exit.
struct TempSource {
  std::string path;
  ~TempSource() {
    if (!path.empty()) ::unlink(path.c_str());
  }
};

}  // namespace

const std::vector<std::string>& gguf_convert_type_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (const auto& [n, t] : type_table()) v.push_back(n);
    return v;
  }();
  return names;
}

int gguf_type_from_name(const std::string& name) {
  std::string l = name;
  std::transform(l.begin(), l.end(), l.begin(), [](unsigned char c) { return std::tolower(c); });
  for (const auto& [n, t] : type_table())
    if (n == l) return t;
  std::string all;
  for (const auto& n : gguf_convert_type_names()) all += (all.empty() ? "" : ", ") + n;
  fail(ErrorCode::kInvalidArgument, "unknown --type '" + name + "'; choose one of " + all);
}

std::string gguf_convert_command(const std::string& src, const std::string& out, const std::string& type,
                                 bool unet_only) {
  auto q = [](const std::string& s) {
    return s.find_first_of(" '\"$\\") == std::string::npos ? s : "'" + s + "'";
  };
  return "visiongen convert " + q(src) + " " + q(out) + " --type " + type + (unet_only ? " --unet-only" : "");
}

bool sdcpp_should_convert(const std::string& name, const std::vector<int64_t>& ne, int target) {
  const GgmlTypeInfo* info = ggml_type_info(target);
  if (!info || ne.empty()) return false;
  if (info->block_elems > 1 && ne[0] % info->block_elems != 0) return false;
  for (const char* e : {".bias", ".scale", ".weight_scale"})
    if (ends_with(name, e)) return false;
  static const char* kKeep[] = {"time_embed.", "label_emb.", "embedding", "img_in.", "txt_in.", "time_in.",
                                "vector_in.", "guidance_in.", "final_layer.", "x_embedder.", "t_embedder.",
                                "y_embedder.", "pos_embed", "context_embedder."};
  for (const char* k : kKeep)
    if (name.find(k) != std::string::npos) return false;
  return true;
}

GgufConvertResult convert_to_gguf(const std::string& src, const std::string& out_path, const GgufConvertOptions& opt) {
  const int target = gguf_type_from_name(opt.type);
  if (!path_exists(src)) fail(ErrorCode::kFileNotFound, "'" + src + "' does not exist; check the path");
  if (is_pickle_path(src)) refuse_pickle(src);
  const fs::path out_dir = fs::absolute(out_path).parent_path();
  if (!fs::is_directory(out_dir))
    fail(ErrorCode::kIoError, "the output folder '" + out_dir.string() + "' does not exist; create it first");

  TempSource temp;
  std::string single = src;
  if (fs::is_directory(src)) {
    // Reuse the diffusers -> original-names mapping of `convert FOLDER OUT.safetensors`.
    temp.path = out_path + ".source-tmp-" + std::to_string(getpid()) + ".safetensors";
    convert_diffusers_to_ldm(src, temp.path);
    single = temp.path;
  }
  const auto file = open_tensor_file(single);

  std::vector<GgufTensorToWrite> tensors;
  nlohmann::json types = nlohmann::json::object();
  GgufConvertResult res;
  for (const auto& [name, info] : file->tensors()) {  // std::map: sorted by name, as sd.cpp writes
    if (opt.unet_only && name.rfind("model.diffusion_model.", 0) != 0) continue;
    if (ends_with(name, ".position_ids")) continue;  // int64 buffers sd.cpp drops
    const int src_type = source_ggml_type(info);
    if (src_type < 0) continue;  // integer/bool buffers are no weights
    if (info.shape.size() > 4)
      fail(ErrorCode::kUnsupportedModel, "tensor '" + name + "' has " + std::to_string(info.shape.size()) +
                                             " dimensions; GGUF stores at most 4");
    std::vector<int64_t> ne(info.shape.rbegin(), info.shape.rend());
    if (ne.empty()) ne = {1};
    const int type = sdcpp_should_convert(name, ne, target) ? target : src_type;
    const TensorInfo* ti = &info;
    const bool copy = type == ti->ggml_type || (ti->ggml_type < 0 && type == src_type && ti->dtype != DType::kF64);
    tensors.push_back({name, type, ne, [ti, type, copy, n0 = ne[0]](uint8_t* dst) {
                         if (copy) {
                           std::memcpy(dst, ti->data, ti->nbytes);
                           return;
                         }
                         const int64_t n = ti->shape.empty() ? 1 : shape_numel(ti->shape);
                         std::vector<float> f(static_cast<size_t>(n));
                         tensor_to_f32(*ti, f.data(), f.size());
                         const size_t rb = ggml_row_bytes(type, n0);
                         for (int64_t r = 0; r < n / n0; ++r) quantize_row(type, f.data() + r * n0, dst + r * rb, n0);
                       }});
    types[name] = ggml_type_name(type);
    ++res.type_counts[ggml_type_name(type)];
  }
  if (tensors.empty())
    fail(ErrorCode::kUnsupportedModel, "'" + src + "' holds no " +
                                           std::string(opt.unet_only ? "model.diffusion_model.* " : "") +
                                           "float tensors to convert");
  res.tensors = static_cast<int64_t>(tensors.size());
  write_gguf(out_path, {}, tensors);
  res.bytes = fs::file_size(out_path);

  nlohmann::json m;
  m["format"] = "gguf";
  m["layout"] = "stable-diffusion.cpp (original checkpoint names, no KV metadata)";
  m["visiongen_version"] = version();
  m["type"] = ggml_type_name(target);
  m["unet_only"] = opt.unet_only;
  m["source"] = source_json(src);
  m["output"] = {{"path", fs::absolute(out_path).string()}, {"bytes", res.bytes}, {"sha256", sha256_file_hex(out_path)}};
  m["counts"] = {{"tensors", res.tensors}, {"by_type", res.type_counts}};
  m["tensor_types"] = types;
  res.manifest_path = out_path + ".json";
  try {
    write_file_atomic(res.manifest_path, m.dump(2) + "\n");
  } catch (...) {
    ::unlink(out_path.c_str());  // a GGUF without its manifest counts as a failed conversion
    throw;
  }
  return res;
}

}  // namespace vg
