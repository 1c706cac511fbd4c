#include "lora/lora_file.h"

#include <openssl/evp.h>

#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "backend/cpu/layers.h"
#include "core/error.h"
#include "core/hash.h"
#include "io/safetensors.h"
#include "io/weights.h"

namespace vg {

namespace {

bool ends_with(const std::string& s, const std::string& e) {
  return s.size() >= e.size() && s.compare(s.size() - e.size(), e.size(), e) == 0;
}
bool starts_with(const std::string& s, const std::string& p) { return s.rfind(p, 0) == 0; }
std::string dots_to_underscores(std::string s) {
  for (char& c : s)
    if (c == '.') c = '_';
  return s;
}

// Tensor suffix -> factor role. Longest first where one ends another.
const std::pair<const char*, const char*> kSuffixes[] = {
    {".lora_down.weight", "down"}, {".lora_up.weight", "up"},   {".lora_mid.weight", "mid"},
    {".lora_A.weight", "down"},    {".lora_B.weight", "up"},    {".lora.down.weight", "down"},
    {".lora.up.weight", "up"},     {".alpha", "alpha"},         {".hada_w1_a", "hada_w1_a"},
    {".hada_w1_b", "hada_w1_b"},   {".hada_w2_a", "hada_w2_a"}, {".hada_w2_b", "hada_w2_b"},
    {".hada_t1", "hada_t1"},       {".hada_t2", "hada_t2"},     {".lokr_w1_a", "lokr_w1_a"},
    {".lokr_w1_b", "lokr_w1_b"},   {".lokr_w2_a", "lokr_w2_a"}, {".lokr_w2_b", "lokr_w2_b"},
    {".lokr_w1", "lokr_w1"},       {".lokr_w2", "lokr_w2"},     {".lokr_t2", "lokr_t2"},
    {".diff", "diff"},
};

// Component and module path ('.' kept) of a module key; false if unknown.
bool split_module(std::string key, LoraModule* m) {
  static const std::pair<const char*, const char*> kKohya[] = {
      {"lora_unet_", "unet"}, {"lora_te1_", "text_encoder"}, {"lora_te2_", "text_encoder_2"}, {"lora_te_", "text_encoder"}};
  for (auto& [p, c] : kKohya)
    if (starts_with(key, p)) {
      m->component = c;
      m->kohya_te = std::strcmp(p, "lora_te_") == 0;
      m->match = key.substr(std::strlen(p));
      return true;
    }
  static const std::pair<const char*, const char*> kPeft[] = {
      {"unet.", "unet"}, {"text_encoder_2.", "text_encoder_2"}, {"text_encoder.", "text_encoder"}};
  for (auto& [p, c] : kPeft)
    if (starts_with(key, p)) {
      m->component = c;
      std::string mod = key.substr(std::strlen(p));
      // older diffusers: "...attn1.processor.to_q_lora" -> "...attn1.to_q"
      if (ends_with(mod, "_lora")) {
        mod.resize(mod.size() - 5);
        auto pos = mod.find(".processor.");
        if (pos != std::string::npos) mod.erase(pos, 10);
        if (ends_with(mod, ".to_out")) mod += ".0";
      }
      m->match = dots_to_underscores(mod);
      return true;
    }
  return false;
}

// sha256 of the bytes after the 8-byte length and the JSON header (the
// sd-webui-additional-networks / A1111 LoRA hash).
std::string addnet_hash(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  uint64_t n = 0;
  if (!f.read(reinterpret_cast<char*>(&n), 8)) return "";
  return sha256_file_hex(path, 8 + n).substr(0, 12);
}

// PEFT alpha for a module from lora_adapter_metadata ("unet.lora_alpha",
// "unet.alpha_pattern", ... flattened by diffusers, or nested per component).
bool peft_alpha(const nlohmann::json& meta, const std::string& component, const std::string& module, float* alpha) {
  auto get = [&](const std::string& k) -> const nlohmann::json* {
    auto it = meta.find(component + "." + k);
    if (it != meta.end()) return &*it;
    auto c = meta.find(component);
    if (c != meta.end() && c->is_object() && c->contains(k)) return &(*c)[k];
    it = meta.find(k);
    return it != meta.end() ? &*it : nullptr;
  };
  if (const auto* pat = get("alpha_pattern"); pat && pat->is_object())
    for (auto& [k, v] : pat->items())
      if (v.is_number() && (module == k || ends_with(module, "." + k))) {
        *alpha = v.get<float>();
        return true;
      }
  if (const auto* a = get("lora_alpha"); a && a->is_number()) {
    *alpha = a->get<float>();
    return true;
  }
  return false;
}

}  // namespace

std::shared_ptr<const LoraFile> load_lora_file(const std::string& path) {
  if (is_pickle_path(path)) refuse_pickle(path);
  auto file = SafetensorsFile::open(path);  // corrupt/truncated -> corrupt_file
  auto out = std::make_shared<LoraFile>();
  out->path = path;
  const auto& meta = file->metadata();
  auto sh = meta.find("sshs_model_hash");  // A1111 prefers the hash the trainer stored
  if (sh != meta.end() && sh->second.size() >= 12) {
    std::promise<std::string> stored;
    stored.set_value(sh->second.substr(0, 12));
    out->hash_ = stored.get_future().share();
  } else {
    out->hash_ = std::async(std::launch::async, addnet_hash, path).share();
  }
  nlohmann::json peft_meta;
  if (auto it = meta.find("lora_adapter_metadata"); it != meta.end()) {
    try {
      peft_meta = nlohmann::json::parse(it->second);
    } catch (const nlohmann::json::exception&) {
      fail(ErrorCode::kCorruptFile, "LoRA '" + path + "' has metadata 'lora_adapter_metadata' that is not valid JSON");
    }
  }
  std::map<std::string, LoraModule> mods;
  for (const auto& [name, info] : file->tensors()) {
    const char* role = nullptr;
    std::string key;
    for (auto& [suf, r] : kSuffixes)
      if (ends_with(name, suf)) {
        role = r;
        key = name.substr(0, name.size() - std::strlen(suf));
        break;
      }
    if (!role && (ends_with(name, ".down.weight") || ends_with(name, ".up.weight")) &&
        ends_with(name.substr(0, name.rfind('.', name.size() - 8)), "_lora")) {  // to_q_lora.down.weight
      key = name.substr(0, name.rfind('.', name.size() - 8));
      role = ends_with(name, ".down.weight") ? "down" : "up";
    }
    LoraModule probe;
    if (!role || !split_module(key, &probe)) {
      out->ignored_keys.push_back(name);
      continue;
    }
    LoraModule& m = mods[key];
    if (m.key.empty()) {
      m = std::move(probe);
      m.key = key;
    }
    Tensor t = file->load_f32(name);
    if (std::strcmp(role, "alpha") == 0) {
      if (t.numel() < 1) fail(ErrorCode::kCorruptFile, "LoRA '" + path + "': '" + name + "' is empty");
      m.alpha = t.data()[0];
      m.has_alpha = true;
    } else {
      // factors are matrices or more; the mid/Tucker cores have two rank dims in front
      const bool core = std::strcmp(role, "mid") == 0 || std::strncmp(role, "hada_t", 6) == 0 || std::strcmp(role, "lokr_t2") == 0;
      if (t.rank() < (core ? 2 : 1) || t.numel() == 0)
        fail(ErrorCode::kCorruptFile, "LoRA '" + path + "': '" + name + "' has shape " + shape_str(t.shape()) +
                                          (core ? "; a core needs two rank dimensions" : "; a factor needs a dimension") +
                                          " and no empty one. The file is damaged: download it again");
      m.t[role] = std::move(t);
    }
  }
  for (auto& [key, m] : mods) {
    if (m.t.empty()) continue;  // an alpha alone
    if (m.t.count("hada_w1_a")) m.kind = LoraKind::kLoha;
    else if (m.t.count("lokr_w1") || m.t.count("lokr_w1_a")) m.kind = LoraKind::kLokr;
    else if (m.t.count("diff")) m.kind = LoraKind::kFull;
    if (!m.has_alpha && m.kind == LoraKind::kLora && !peft_meta.is_null()) {
      // module path with dots for alpha_pattern: the key minus its component prefix
      const std::string mod = key.substr(key.find('.') + 1);
      m.has_alpha = peft_alpha(peft_meta, m.component, mod, &m.alpha);
    }
    out->modules.push_back(std::move(m));
  }
  return out;
}

namespace {

const Tensor* opt(const LoraModule& m, const char* k) {
  auto it = m.t.find(k);
  return it == m.t.end() ? nullptr : &it->second;
}
const Tensor& need(const LoraModule& m, const char* k) {
  const Tensor* t = opt(m, k);
  if (!t) fail(ErrorCode::kCorruptFile, "LoRA module '" + m.key + "' has no '" + k + "' tensor");
  return *t;
}
int64_t cols(const Tensor& t) { return t.numel() / std::max<int64_t>(1, t.dim(0)); }

// a[rows, k] @ b[k, cols] into a new [rows, cols].
Tensor matmul(const Tensor& a, const Tensor& b) {
  const int64_t k = cols(a);
  if (b.dim(0) != k) fail(ErrorCode::kCorruptFile, "LoRA factors of shapes " + shape_str(a.shape()) + " and " + shape_str(b.shape()) + " do not multiply");
  Tensor c = Tensor::zeros({a.dim(0), cols(b)});
  sgemm(false, false, a.dim(0), cols(b), k, 1.0f, a.data(), k, b.data(), cols(b), 0.0f, c.data(), cols(b));
  return c;
}

// LyCORIS Tucker: einsum("i j k l, j r, i p -> p r k l", t, b, a).
Tensor tucker(const Tensor& t, const Tensor& b, const Tensor& a) {
  const int64_t r1 = t.dim(0), r2 = t.dim(1), kk = t.numel() / (r1 * r2), in = cols(b), out = cols(a);
  if (b.dim(0) != r2 || a.dim(0) != r1)
    fail(ErrorCode::kCorruptFile, "LoRA Tucker core " + shape_str(t.shape()) + " does not fit its factors " +
                                      shape_str(a.shape()) + " and " + shape_str(b.shape()));
  Tensor res = Tensor::zeros({out, in * kk});
  for (int64_t i = 0; i < r1; ++i)
    for (int64_t j = 0; j < r2; ++j)
      for (int64_t r = 0; r < in; ++r) {
        const float bj = b.data()[j * in + r];
        for (int64_t k = 0; k < kk; ++k) {
          const float tb = t.data()[(i * r2 + j) * kk + k] * bj;
          for (int64_t p = 0; p < out; ++p) res.data()[(p * in + r) * kk + k] += a.data()[i * out + p] * tb;
        }
      }
  return res;
}

Tensor loha_part(const LoraModule& m, const char* wa, const char* wb, const char* tn) {
  if (const Tensor* t = opt(m, tn)) return tucker(*t, need(m, wb), need(m, wa));
  return matmul(need(m, wa), need(m, wb));
}

Tensor lokr_part(const LoraModule& m, const char* w, const char* wa, const char* wb, const char* tn) {
  if (const Tensor* f = opt(m, w)) return f->reshape({f->dim(0), cols(*f)});
  if (tn && opt(m, tn)) return tucker(need(m, tn), need(m, wb), need(m, wa));
  return matmul(need(m, wa), need(m, wb));
}

// The full update (unscaled) as [out, cols]; LoRA is done in place instead.
Tensor full_delta(const LoraModule& m) {
  if (m.kind == LoraKind::kFull) return need(m, "diff").reshape({need(m, "diff").dim(0), cols(need(m, "diff"))});
  if (m.kind == LoraKind::kLoha) {
    Tensor w1 = loha_part(m, "hada_w1_a", "hada_w1_b", "hada_t1"), w2 = loha_part(m, "hada_w2_a", "hada_w2_b", "hada_t2");
    if (w1.numel() != w2.numel()) fail(ErrorCode::kCorruptFile, "LoHa module '" + m.key + "' has halves of different sizes");
    for (int64_t i = 0; i < w1.numel(); ++i) w1.data()[i] *= w2.data()[i];
    return w1;
  }
  // LoKr: kron(w1 [a,b], w2 [c, d*k*k]) is the [a*c, b*d, kh, kw] update in memory order
  Tensor w1 = lokr_part(m, "lokr_w1", "lokr_w1_a", "lokr_w1_b", nullptr);
  Tensor w2 = lokr_part(m, "lokr_w2", "lokr_w2_a", "lokr_w2_b", "lokr_t2");
  const int64_t a = w1.dim(0), b = cols(w1), c = w2.dim(0), d = cols(w2);
  Tensor k = Tensor::zeros({a * c, b * d});
  for (int64_t i = 0; i < a; ++i)
    for (int64_t j = 0; j < b; ++j) {
      const float s = w1.data()[i * b + j];
      for (int64_t p = 0; p < c; ++p)
        for (int64_t q = 0; q < d; ++q) k.data()[(i * c + p) * (b * d) + j * d + q] = s * w2.data()[p * d + q];
    }
  return k;
}

// LoRA down factor with lora_mid folded in: [r, in*kh*kw].
Tensor lora_down(const LoraModule& m) {
  const Tensor& down = need(m, "down");
  const Tensor* mid = opt(m, "mid");
  if (!mid) return down;
  // new_down[a, i, hw] = sum_b mid[a, b, hw] * down[b, i]
  const int64_t r = mid->dim(0), rb = mid->dim(1), kk = mid->numel() / (r * rb), in = cols(down);
  if (down.dim(0) != rb) fail(ErrorCode::kCorruptFile, "LoRA module '" + m.key + "': lora_mid and lora_down ranks differ");
  Tensor nd = Tensor::zeros({r, in * kk});
  for (int64_t a = 0; a < r; ++a)
    for (int64_t b = 0; b < rb; ++b)
      for (int64_t i = 0; i < in; ++i) {
        const float dv = down.data()[b * in + i];
        for (int64_t k = 0; k < kk; ++k) nd.data()[(a * in + i) * kk + k] += mid->data()[(a * rb + b) * kk + k] * dv;
      }
  return nd;
}

}  // namespace

Shape lora_delta_shape(const LoraModule& m, std::string* why) {
  try {
    if (m.kind == LoraKind::kLora) {
      const Tensor& up = need(m, "up");
      const Tensor& down = need(m, "down");
      const Tensor* mid = opt(m, "mid");
      const int64_t r = mid ? mid->dim(0) : down.dim(0);
      if (cols(up) != r) {
        *why = "lora_up " + shape_str(up.shape()) + " and lora_down " + shape_str(down.shape()) + " have different ranks";
        return {};
      }
      Shape s{up.dim(0), down.rank() > 1 ? down.dim(1) : 1};
      if (mid) s.insert(s.end(), mid->shape().begin() + 2, mid->shape().end());
      else s.insert(s.end(), down.shape().begin() + std::min<int>(2, down.rank()), down.shape().end());
      return s;
    }
    Tensor d = full_delta(m);
    return {d.dim(0), cols(d)};
  } catch (const VgException& e) {
    *why = e.what();
    return {};
  }
}

float lora_alpha_scale(const LoraModule& m) {
  if (!m.has_alpha) return 1.0f;
  int64_t rank = 0;
  if (m.kind == LoraKind::kLora) rank = need(m, "down").dim(0);
  else if (m.kind == LoraKind::kLoha) rank = need(m, "hada_w1_b").dim(0);
  else if (m.kind == LoraKind::kLokr) {
    if (const Tensor* b = opt(m, "lokr_w1_b")) rank = b->dim(0);
    else if (const Tensor* b2 = opt(m, "lokr_w2_b")) rank = b2->dim(0);
  }
  return rank > 0 ? m.alpha / static_cast<float>(rank) : 1.0f;
}

bool lora_low_rank(const LoraModule& m, Tensor* up, Tensor* down) {
  if (m.kind != LoraKind::kLora) return false;
  const Tensor d = lora_down(m), u = need(m, "up");
  *down = d.reshape({d.dim(0), cols(d)});
  *up = u.reshape({u.dim(0), cols(u)});
  return true;
}

void lora_add_delta(const LoraModule& m, float scale, Tensor& w) {
  const int64_t out = w.dim(0), c = w.numel() / out;
  if (m.kind == LoraKind::kLora) {
    const Tensor& up = need(m, "up");
    Tensor down = lora_down(m);
    const int64_t r = down.dim(0);
    sgemm(false, false, out, c, r, scale, up.data(), r, down.data(), c, 1.0f, w.data(), c);
    return;
  }
  Tensor d = full_delta(m);
  for (int64_t i = 0; i < w.numel(); ++i) w.data()[i] += scale * d.data()[i];
}

}  // namespace vg
