// Test helper: a safetensors file rewritten as an F32 GGUF.
#pragma once
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "io/gguf_writer.h"
#include "io/tensor_file.h"

namespace vg::test {

// Every tensor of a safetensors file as an F32 GGUF tensor, renamed by `rename`
// ("" drops it), plus `extra` (a name the model does not know) when given.
// Tensors of more than 4 dimensions (Wan's 3-D convolutions) are stored as
// city96's converter stores them: flattened, the real shape in a
// `comfy.gguf.orig_shape.<name>` INT32 array.
inline void to_gguf(const std::string& src_path, const std::string& dst,
                    const std::function<std::string(const std::string&)>& rename, const std::string& extra = "") {
  auto src = open_tensor_file(src_path);
  std::vector<Tensor> keep;
  keep.reserve(src->tensors().size() + 1);
  std::vector<GgufTensorToWrite> out;
  std::vector<std::pair<std::string, GgufValue>> kv = {{"general.architecture", gguf_string("test")}};
  auto add = [&](const std::string& name, Tensor t) {
    keep.push_back(std::move(t));
    const Tensor& k = keep.back();
    std::vector<int64_t> ne(k.shape().rbegin(), k.shape().rend());
    if (ne.size() > 4) {
      GgufValue shape;
      shape.type = GgufValueType::kArray;
      shape.elem_type = GgufValueType::kI32;
      for (int64_t d : k.shape()) {
        GgufValue v;
        v.type = GgufValueType::kI32;
        v.i = d;
        shape.items.push_back(v);
      }
      kv.emplace_back("comfy.gguf.orig_shape." + name, shape);
      ne = k.numel() % 256 == 0 ? std::vector<int64_t>{256, k.numel() / 256} : std::vector<int64_t>{k.numel()};
    }
    out.push_back({name, 0, ne, [&k](uint8_t* d) { std::memcpy(d, k.data(), k.numel() * 4); }});
  };
  for (const auto& [name, info] : src->tensors())
    if (const std::string g = rename(name); !g.empty()) add(g, src->load_f32(name));
  if (!extra.empty()) add(extra, Tensor::zeros({4}));
  write_gguf(dst, kv, out);
}

}  // namespace vg::test
