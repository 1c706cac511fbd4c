#include "lora/lora_manager.h"

#include <cstdlib>
#include <filesystem>
#include <regex>
#include <sstream>

#include "core/error.h"
#include "io/confined_path.h"
#include "io/weights.h"

namespace vg {

namespace fs = std::filesystem;

namespace {

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\n"), e = s.find_last_not_of(" \t\n");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

bool parse_float(const std::string& s, float* v) {
  if (s.empty()) return false;
  char* end = nullptr;
  *v = std::strtof(s.c_str(), &end);
  return end && *end == '\0';
}

// "name" or "name:weight" (the last ':' splits only when a number follows).
LoraSpec parse_one(const std::string& item) {
  LoraSpec s{trim(item), 1.0f};
  const auto c = s.name.rfind(':');
  float w = 0;
  if (c != std::string::npos && parse_float(trim(s.name.substr(c + 1)), &w)) {
    s.weight = w;
    s.name = trim(s.name.substr(0, c));
  }
  return s;
}

std::string underscored(std::string s) {
  for (char& c : s)
    if (c == '.') c = '_';
  return s;
}

std::string fmt_weight(float w) {
  std::ostringstream os;
  os.precision(9);
  os << w;
  return os.str();
}

[[noreturn]] void incompatible(const std::string& lora, const std::string& what) {
  fail(ErrorCode::kLoraIncompatible, "LoRA '" + lora + "' " + what + "; nothing was applied");
}

}  // namespace

std::vector<LoraSpec> parse_lora_list(const std::string& s) {
  std::vector<LoraSpec> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!trim(item).empty()) out.push_back(parse_one(item));
  return out;
}

std::string extract_prompt_loras(const std::string& prompt, std::vector<LoraSpec>* out) {
  static const std::regex tag(R"(<lora:([^>]+)>)");
  std::string rest;
  auto it = std::sregex_iterator(prompt.begin(), prompt.end(), tag);
  size_t pos = 0;
  for (; it != std::sregex_iterator(); ++it) {
    const auto& m = *it;
    rest += prompt.substr(pos, static_cast<size_t>(m.position(0)) - pos);
    pos = static_cast<size_t>(m.position(0) + m.length(0));
    std::string body = m[1].str();
    // <lora:name:te_weight:unet_weight>: keep name and the first weight
    const auto c1 = body.find(':');
    LoraSpec s{trim(body.substr(0, c1)), 1.0f};
    if (c1 != std::string::npos) {
      std::string w = body.substr(c1 + 1);
      w = trim(w.substr(0, w.find(':')));
      float v = 0;
      if (parse_float(w, &v)) s.weight = v;
      else s.name = trim(body);  // a ':' inside the name
    }
    if (!s.name.empty()) out->push_back(s);
  }
  rest += prompt.substr(pos);
  return rest;
}

std::vector<std::string> lora_folders(const std::vector<std::string>& dirs) {
  std::vector<std::string> all = dirs;
  if (const char* env = std::getenv("VG_LORA_DIR"); env && *env) {
    std::stringstream ss(env);
    std::string d;
    while (std::getline(ss, d, ':'))
      if (!d.empty()) all.push_back(d);
  }
  return all;
}

std::string resolve_lora_path(const std::string& name, const std::vector<std::string>& dirs, bool confined) {
  if (name.empty()) fail(ErrorCode::kInvalidArgument, "empty LoRA name");
  std::error_code ec;
  if (confined && (name.front() == '/' || name.find("..") != std::string::npos || name.find('\\') != std::string::npos))
    fail(ErrorCode::kInvalidArgument, "LoRA '" + name + "' is not a name inside the LoRA folders (no paths, no '..'); "
                                      "see GET /v1/loras for the LoRAs this server has");
  if (!confined && fs::is_regular_file(name, ec)) return name;
  const std::vector<std::string> all = lora_folders(dirs);
  for (const auto& d : all)
    for (const char* ext : {"", ".safetensors", ".ckpt", ".pt"}) {
      const std::string p = (fs::path(d) / (name + ext)).string();
      // pickles are refused when opened; a symlink out of the folder is not followed when confined
      if (fs::is_regular_file(p, ec) && (!confined || stays_inside(p, d))) return p;
    }
  std::string where;
  for (const auto& d : all) where += (where.empty() ? "" : ", ") + d;
  fail(ErrorCode::kLoraNotFound, "LoRA '" + name + "' is not a file" +
                                     (all.empty() ? std::string(" and no LoRA folder is set")
                                                  : " and is not in the LoRA folders (" + where + ")") +
                                     "; pass a path, or add its folder with --lora-dir or $VG_LORA_DIR");
}

LoraManager::LoraManager(std::string family, std::vector<LoraComponent> components)
    : family_(std::move(family)), components_(std::move(components)) {}

std::shared_ptr<const LoraFile> LoraManager::open(const std::string& path) {
  std::error_code ec;
  const std::string stamp = std::to_string(fs::file_size(path, ec)) + "@" +
                            std::to_string(fs::last_write_time(path, ec).time_since_epoch().count());
  auto it = files_.find(path);
  if (it != files_.end() && it->second.first == stamp) return it->second.second;
  auto f = load_lora_file(path);
  files_[path] = {stamp, f};
  return f;
}

const std::map<std::string, LoraManager::Target>& LoraManager::lookup() {
  lookup_.clear();
  for (const auto& c : components_) {
    if (!c.registry) continue;
    for (const auto& [name, slot] : c.registry->slots()) {
      Target t{c.name, name, slot};
      lookup_.emplace(c.name + "/" + underscored(name), t);
      if (c.sgm_name) {
        const std::string sgm = c.sgm_name(name);
        if (!sgm.empty()) lookup_.emplace(c.name + "/" + underscored(sgm), t);
      }
    }
  }
  return lookup_;
}

LoraApplied LoraManager::set(const std::vector<LoraSpec>& loras) {
  struct Req {
    LoraSpec spec;
    std::string path;
    std::shared_ptr<const LoraFile> file;
  };
  std::vector<Req> reqs;
  std::string sig = runtime_ ? "runtime;" : "";
  for (const auto& s : loras) {
    Req r{s, resolve_lora_path(s.name, dirs_, confined_), nullptr};
    std::error_code ec;
    sig += r.path + "|" + std::to_string(fs::last_write_time(r.path, ec).time_since_epoch().count()) + "|" +
           fmt_weight(s.weight) + ";";
    reqs.push_back(std::move(r));
  }
  if (sig == signature_) return applied_;
  for (auto& r : reqs) r.file = open(r.path);

  // Validate everything first: a failing LoRA leaves the model as it was.
  const auto& table = lookup();
  bool has_te2 = false;
  for (const auto& c : components_) has_te2 |= c.name == "text_encoder_2";
  std::map<std::shared_ptr<LayerPatch>, std::vector<WeightDelta>> deltas;
  LoraApplied applied;
  for (const auto& r : reqs) {
    const std::string& who = r.spec.name;
    std::vector<std::string> unmatched = r.file->ignored_keys;
    size_t matched = 0;
    // the family first: its message says more than a shape
    for (const LoraModule& m : r.file->modules) {
      bool have = false;
      for (const auto& c : components_) have |= c.name == m.component;
      if (!have && m.component == "text_encoder_2")
        incompatible(who, "has weights for a second text encoder ('" + m.key + "'): it was made for SDXL, and this " +
                              family_ + " model has one text encoder");
      if (m.kohya_te && has_te2)
        incompatible(who, "has text-encoder keys for a single text encoder ('lora_te_', e.g. '" + m.key +
                              "'): it was made for SD 1.x/2.x, and this " + family_ + " model has two (lora_te1_/lora_te2_)");
    }
    for (size_t i = 0; i < r.file->modules.size(); ++i) {
      const LoraModule& m = r.file->modules[i];
      auto it = table.find(m.component + "/" + m.match);
      if (it == table.end() && m.component != "unet") it = table.find(m.component + "/text_model_" + m.match);
      if (it == table.end()) {
        unmatched.push_back(m.key);
        continue;
      }
      const Target& t = it->second;
      std::string why;
      const Shape ds = lora_delta_shape(m, &why);
      if (!why.empty()) incompatible(who, "layer '" + t.layer + "' (key '" + m.key + "'): " + why);
      const Shape& ws = t.slot->shape;
      if (ds.empty() || ds[0] != ws[0] || shape_numel(ds) != shape_numel(ws))
        incompatible(who, "does not fit layer '" + t.layer + "' of this " + family_ + " model: the layer's weight is " +
                              shape_str(ws) + " but the LoRA's update (key '" + m.key + "') is " + shape_str(ds) +
                              " (was it made for another model family?)");
      ++matched;
      const float scale = r.spec.weight * lora_alpha_scale(m);
      auto file = r.file;
      WeightDelta d;
      d.add = [file, i, scale](Tensor& w) { lora_add_delta(file->modules[i], scale, w); };
      d.scale = scale;
      lora_low_rank(m, &d.up, &d.down);
      deltas[t.slot].push_back(std::move(d));
    }
    if (matched == 0 && !r.file->modules.empty())
      incompatible(who, "matches none of this " + family_ + " model's layers (its " + std::to_string(r.file->modules.size()) +
                            " modules, e.g. '" + r.file->modules.front().key + "', are for another model)");
    if (matched == 0 && r.file->modules.empty())
      incompatible(who, "holds no LoRA weights this engine understands (" + std::to_string(r.file->ignored_keys.size()) + " unknown tensors)");
    if (!unmatched.empty()) {
      std::string list;
      for (size_t k = 0; k < unmatched.size() && k < 10; ++k) list += (k ? ", " : "") + unmatched[k];
      if (unmatched.size() > 10) list += ", ... (" + std::to_string(unmatched.size() - 10) + " more)";
      applied.warnings.push_back("LoRA '" + who + "': " + std::to_string(unmatched.size()) +
                                 " keys match no layer of this model and were ignored: " + list);
    }
    applied.hashes.emplace_back(fs::path(who).stem().string(), r.file);
  }
  // Apply: new deltas, and the loaded weights back where a LoRA was removed.
  for (const auto& slot : patched_)
    if (!deltas.count(slot)) slot->set_deltas({});
  patched_.clear();
  for (auto& [slot, d] : deltas) {
    slot->set_deltas(std::move(d), runtime_);
    patched_.insert(slot);
  }
  signature_ = sig;
  applied_ = applied;
  return applied;
}

}  // namespace vg
