#include "models/mmdit_names.h"

#include <filesystem>
#include <list>
#include <map>
#include <memory>
#include <regex>

#include "core/error.h"
#include "io/tensor_file.h"

namespace vg {

namespace {

struct Owned {
  std::list<std::vector<uint8_t>> bufs;
  std::map<std::string, TensorInfo> made;         // fused / reordered tensors
  std::map<std::string, const TensorInfo*> names; // every Stability name
};

// One-to-one renames inside transformer_blocks.N. (diffusers -> Stability).
const std::map<std::string, std::string>& block_renames() {
  static const std::map<std::string, std::string> m{
      {"norm1.linear", "x_block.adaLN_modulation.1"},
      {"norm1_context.linear", "context_block.adaLN_modulation.1"},
      {"attn.norm_q", "x_block.attn.ln_q"},
      {"attn.norm_k", "x_block.attn.ln_k"},
      {"attn.norm_added_q", "context_block.attn.ln_q"},
      {"attn.norm_added_k", "context_block.attn.ln_k"},
      {"attn.to_out.0", "x_block.attn.proj"},
      {"attn.to_add_out", "context_block.attn.proj"},
      {"ff.net.0.proj", "x_block.mlp.fc1"},
      {"ff.net.2", "x_block.mlp.fc2"},
      {"ff_context.net.0.proj", "context_block.mlp.fc1"},
      {"ff_context.net.2", "context_block.mlp.fc2"},
      {"attn2.norm_q", "x_block.attn2.ln_q"},
      {"attn2.norm_k", "x_block.attn2.ln_k"},
      {"attn2.to_out.0", "x_block.attn2.proj"},
  };
  return m;
}

const std::map<std::string, std::string>& top_renames() {
  static const std::map<std::string, std::string> m{
      {"pos_embed.proj", "x_embedder.proj"},
      {"time_text_embed.timestep_embedder.linear_1", "t_embedder.mlp.0"},
      {"time_text_embed.timestep_embedder.linear_2", "t_embedder.mlp.2"},
      {"time_text_embed.text_embedder.linear_1", "y_embedder.mlp.0"},
      {"time_text_embed.text_embedder.linear_2", "y_embedder.mlp.2"},
      {"context_embedder", "context_embedder"},
      {"norm_out.linear", "final_layer.adaLN_modulation.1"},
      {"proj_out", "final_layer.linear"},
  };
  return m;
}

size_t row_bytes(const TensorInfo& t, const std::string& name) {
  if (t.shape.empty() || t.shape[0] <= 0 || t.nbytes % static_cast<size_t>(t.shape[0]))
    fail(ErrorCode::kCorruptFile, "transformer weight '" + name + "' has an unusable shape " + shape_str(t.shape));
  return t.nbytes / static_cast<size_t>(t.shape[0]);
}

// q;k;v stacked by rows into one tensor named `name`.
void fuse(Owned& o, const std::string& name, const TensorInfo* q, const TensorInfo* k, const TensorInfo* v) {
  for (const TensorInfo* t : {k, v})
    if (t->dtype != q->dtype || t->ggml_type != q->ggml_type || t->shape != q->shape)
      fail(ErrorCode::kShapeMismatch, "the q, k and v weights for '" + name +
                                          "' differ in dtype or shape; the transformer folder is inconsistent");
  auto& buf = o.bufs.emplace_back();
  buf.reserve(3 * q->nbytes);
  for (const TensorInfo* t : {q, k, v}) buf.insert(buf.end(), t->data, t->data + t->nbytes);
  TensorInfo info = *q;
  info.name = name;
  info.shape[0] *= 3;
  info.data = buf.data();
  info.nbytes = buf.size();
  o.names[name] = &(o.made[name] = info);
}

// diffusers' AdaLayerNormContinuous is (scale, shift); Stability's (shift, scale).
void swap_halves(Owned& o, const std::string& name, const TensorInfo* t) {
  const size_t rb = row_bytes(*t, name);
  if (t->shape[0] % 2) fail(ErrorCode::kShapeMismatch, "'" + name + "' must have an even number of rows");
  const size_t half = rb * static_cast<size_t>(t->shape[0] / 2);
  auto& buf = o.bufs.emplace_back(t->data + half, t->data + t->nbytes);
  buf.insert(buf.end(), t->data, t->data + half);
  TensorInfo info = *t;
  info.name = name;
  info.data = buf.data();
  o.names[name] = &(o.made[name] = info);
}

}  // namespace

bool is_diffusers_mmdit(const WeightStore& w) { return w.find("pos_embed.proj.weight") != nullptr; }

WeightStore mmdit_from_diffusers(const WeightStore& src) {
  auto o = std::make_shared<Owned>();
  const auto& e = src.entries();
  auto get = [&](const std::string& n) -> const TensorInfo* {
    auto it = e.find(n);
    if (it == e.end())
      fail(ErrorCode::kCorruptFile, src.describe() + " lacks '" + n + "'; the transformer weights are incomplete");
    return it->second;
  };
  int last = -1;  // the context_pre_only block
  static const std::regex blk(R"(^transformer_blocks\.(\d+)\.(.+)\.(weight|bias)$)");
  for (auto& [name, info] : e) {
    std::smatch m;
    if (std::regex_match(name, m, blk)) last = std::max(last, std::stoi(m[1].str()));
  }
  for (auto& [name, info] : e) {
    std::smatch m;
    if (name == "pos_embed.pos_embed") {
      o->names["pos_embed"] = info;
    } else if (std::regex_match(name, m, blk)) {
      const std::string n = m[1].str(), part = m[2].str(), kind = m[3].str();
      const std::string p = "joint_blocks." + n + ".";
      if (part == "attn.to_q" || part == "attn.add_q_proj" || part == "attn2.to_q") {
        const std::string base = name.substr(0, name.size() - kind.size() - part.size() - 1);
        const bool add = part == "attn.add_q_proj";
        const std::string mod = part.substr(0, part.find('.') + 1);  // "attn." / "attn2."
        auto other = [&](const char* x) {
          return get(base + mod + (add ? std::string("add_") + x + "_proj" : std::string("to_") + x) + "." + kind);
        };
        const std::string to = p + (add ? "context_block." : "x_block.") + (part == "attn2.to_q" ? "attn2" : "attn") +
                               ".qkv." + kind;
        fuse(*o, to, info, other("k"), other("v"));
      } else if (auto it = block_renames().find(part); it != block_renames().end()) {
        const std::string to = p + it->second + "." + kind;
        if (part == "norm1_context.linear" && std::stoi(n) == last) swap_halves(*o, to, info);
        else o->names[to] = info;
      }
    } else {
      const size_t dot = name.rfind('.');
      auto it = dot == std::string::npos ? top_renames().end() : top_renames().find(name.substr(0, dot));
      if (it == top_renames().end()) continue;
      const std::string to = it->second + name.substr(dot);
      if (it->first == "norm_out.linear") swap_halves(*o, to, info);
      else o->names[to] = info;
    }
  }
  WeightStore w = src;  // keeps the files mapped; the owned tensors live in the resolver
  w.set_resolver([o = std::shared_ptr<const Owned>(o)](const std::string& n) -> const TensorInfo* {
    auto it = o->names.find(n);
    return it == o->names.end() ? nullptr : it->second;
  });
  return w;
}

bool is_mmdit_file(const TensorFile& f) {
  for (const char* p : {"", "model.diffusion_model."})
    if (f.has(std::string(p) + "x_embedder.proj.weight") || f.has(std::string(p) + "pos_embed.proj.weight")) return true;
  return false;
}

WeightStore open_mmdit_weights(const std::string& path) {
  if (std::filesystem::is_directory(path)) return mmdit_from_diffusers(open_component_weights(path, "transformer"));
  if (is_pickle_path(path)) refuse_pickle(path);
  return mmdit_file_weights(open_tensor_file(path));
}

WeightStore mmdit_file_weights(std::shared_ptr<TensorFile> file) {
  WeightStore w;
  const std::string prefix = "model.diffusion_model.";
  const bool prefixed = file->has(prefix + "x_embedder.proj.weight");
  w.add_file(file, prefixed ? prefix : "");
  if (is_diffusers_mmdit(w)) return mmdit_from_diffusers(w);
  return w;
}

}  // namespace vg
