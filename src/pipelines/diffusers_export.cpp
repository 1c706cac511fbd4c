// Single-file checkpoint (LDM or SGM layout) -> diffusers folder: the configs
// come from the loaded model; tensor names are inverted through the same
// diffusers -> LDM maps the loaders use (ldm_names.h), so both directions agree.
#include <algorithm>
#include <cstring>
#include <filesystem>
#include <functional>
#include <list>
#include <regex>

#include "core/error.h"
#include "io/atomic_file.h"
#include "io/safetensors.h"
#include "models/config_util.h"
#include "pipelines/ldm_checkpoint.h"
#include "pipelines/ldm_names.h"
#include "pipelines/sd_model.h"
#include "text/clip_merges.h"

namespace vg {

namespace fs = std::filesystem;

namespace {

using Prefixes = std::vector<std::pair<std::string, std::string>>;  // ldm prefix -> diffusers prefix

// The LDM prefix of a diffusers prefix: the forward map applied to prefix + "weight".
void add_prefix(Prefixes& p, const std::string& d,
                const std::function<std::string(const std::string&)>& fwd) {
  std::string l = fwd(d + "weight");
  p.emplace_back(l.substr(0, l.size() - 6), d);
}

const char* kResParts[] = {"norm1", "conv1", "time_emb_proj", "norm2", "conv2", "conv_shortcut"};

Prefixes unet_prefixes(const UNetConfig& uc) {
  const int L = static_cast<int>(uc.layers_per_block.at(0));
  const int n = static_cast<int>(uc.block_out_channels.size());
  std::vector<bool> up_attn;
  for (auto& t : uc.up_block_types) up_attn.push_back(t == "CrossAttnUpBlock2D");
  auto fwd = [&](const std::string& d) {
    if (d.rfind("add_embedding.linear_1.", 0) == 0)
      return "model.diffusion_model.label_emb.0.0." + d.substr(23);
    if (d.rfind("add_embedding.linear_2.", 0) == 0)
      return "model.diffusion_model.label_emb.0.2." + d.substr(23);
    return unet_to_ldm(d, L, up_attn);
  };
  Prefixes p;
  for (const char* d :
       {"time_embedding.linear_1.", "time_embedding.linear_2.", "conv_in.", "conv_norm_out.", "conv_out.",
        "add_embedding.linear_1.", "add_embedding.linear_2.", "mid_block.attentions.0."})
    add_prefix(p, d, fwd);
  auto resnet = [&](const std::string& r) {
    for (const char* part : kResParts) add_prefix(p, r + part + ".", fwd);
  };
  for (int j = 0; j < 2; ++j) resnet("mid_block.resnets." + std::to_string(j) + ".");
  for (int i = 0; i < n; ++i) {
    const std::string db = "down_blocks." + std::to_string(i) + ".",
                      ub = "up_blocks." + std::to_string(i) + ".";
    for (int j = 0; j < L; ++j) {
      resnet(db + "resnets." + std::to_string(j) + ".");
      if (uc.down_block_types[i] == "CrossAttnDownBlock2D")
        add_prefix(p, db + "attentions." + std::to_string(j) + ".", fwd);
    }
    for (int j = 0; j <= L; ++j) {
      resnet(ub + "resnets." + std::to_string(j) + ".");
      if (up_attn[i]) add_prefix(p, ub + "attentions." + std::to_string(j) + ".", fwd);
    }
    if (i + 1 < n) {
      add_prefix(p, db + "downsamplers.0.conv.", fwd);
      add_prefix(p, ub + "upsamplers.0.conv.", fwd);
    }
  }
  return p;
}

Prefixes vae_prefixes(const VaeConfig& vc) {
  const int n = static_cast<int>(vc.block_out_channels.size());
  const int L = static_cast<int>(vc.layers_per_block);
  auto fwd = [n](const std::string& d) { return vae_to_ldm(d, n); };
  Prefixes p;
  for (const char* d : {"quant_conv.", "post_quant_conv."}) add_prefix(p, d, fwd);
  auto resnet = [&](const std::string& r) {
    for (const char* part : kResParts) add_prefix(p, r + part + ".", fwd);
  };
  for (std::string side : {"encoder.", "decoder."}) {
    for (const char* d : {"conv_in.", "conv_out.", "conv_norm_out."}) add_prefix(p, side + d, fwd);
    for (int j = 0; j < 2; ++j) resnet(side + "mid_block.resnets." + std::to_string(j) + ".");
    for (const char* a : {"group_norm.", "to_q.", "to_k.", "to_v.", "to_out.0."})
      add_prefix(p, side + "mid_block.attentions.0." + a, fwd);
  }
  for (int i = 0; i < n; ++i) {
    const std::string eb = "encoder.down_blocks." + std::to_string(i) + ".",
                      db = "decoder.up_blocks." + std::to_string(i) + ".";
    for (int j = 0; j < L; ++j) resnet(eb + "resnets." + std::to_string(j) + ".");
    for (int j = 0; j <= L; ++j) resnet(db + "resnets." + std::to_string(j) + ".");
    if (i + 1 < n) {
      add_prefix(p, eb + "downsamplers.0.conv.", fwd);
      add_prefix(p, db + "upsamplers.0.conv.", fwd);
    }
  }
  return p;
}

struct Out {
  std::vector<TensorToWrite> tensors;
  std::list<std::vector<uint8_t>> owned;
};

// Every file tensor under `root` renamed by the longest matching prefix.
void rename_all(const SafetensorsFile& f, const std::string& root, Prefixes p, Out& out, bool vae) {
  std::sort(p.begin(), p.end(), [](auto& a, auto& b) { return a.first.size() > b.first.size(); });
  for (auto& [name, info] : f.tensors()) {
    if (name.rfind(root, 0) != 0) continue;
    const std::pair<std::string, std::string>* hit = nullptr;
    for (auto& e : p)
      if (name.rfind(e.first, 0) == 0) {
        hit = &e;
        break;
      }
    if (!hit) fail(ErrorCode::kCorruptFile, "'" + f.path() + "': no diffusers name for '" + name + "'");
    const std::string d = hit->second + name.substr(hit->first.size());
    Shape s = info.shape;
    if (vae && d.find(".attentions.0.") != std::string::npos && s.size() == 4)
      s = {s[0], s[1]};  // 1x1 conv -> linear
    out.tensors.push_back(TensorToWrite{d, info.dtype, s, info.data});
  }
}

// OpenCLIP tower under P -> transformers' CLIPTextModel(WithProjection) names; layers >= num_layers dropped
// (SD2).
void openclip_to_hf(const SafetensorsFile& f, const std::string& P, const ClipTextConfig& tc, Out& out) {
  static const std::regex layer(R"(^transformer\.resblocks\.(\d+)\.(.*)$)");
  for (auto& entry : f.tensors()) {
    const std::string& name = entry.first;
    const TensorInfo& info = entry.second;  // a reference lambdas can capture (not a structured binding)
    if (name.rfind(P, 0) != 0) continue;
    const std::string n = name.substr(P.size());
    std::smatch m;
    auto put = [&](const std::string& d) {
      out.tensors.push_back(TensorToWrite{d, info.dtype, info.shape, info.data});
    };
    if (n == "token_embedding.weight")
      put("text_model.embeddings.token_embedding.weight");
    else if (n == "positional_embedding")
      put("text_model.embeddings.position_embedding.weight");
    else if (n.rfind("ln_final.", 0) == 0)
      put("text_model.final_layer_norm." + n.substr(9));
    else if (n == "text_projection" && tc.projection_dim > 0) {
      const int64_t rows = info.shape.at(0), cols = info.shape.at(1);  // [C,P] -> [P,C]
      const size_t es = dtype_size(info.dtype);
      auto& buf = out.owned.emplace_back(info.nbytes);
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c)
          std::memcpy(buf.data() + (c * rows + r) * es, info.data + (r * cols + c) * es, es);
      out.tensors.push_back(TensorToWrite{"text_projection.weight", info.dtype, {cols, rows}, buf.data()});
    } else if (std::regex_match(n, m, layer)) {
      if (std::stoll(m[1].str()) >= tc.num_layers) continue;
      const std::string r = "text_model.encoder.layers." + m[1].str() + ".", part = m[2];
      static const std::pair<const char*, const char*> kMap[] = {{"ln_1.", "layer_norm1."},
                                                                 {"ln_2.", "layer_norm2."},
                                                                 {"mlp.c_fc.", "mlp.fc1."},
                                                                 {"mlp.c_proj.", "mlp.fc2."},
                                                                 {"attn.out_proj.", "self_attn.out_proj."}};
      bool done = false;
      for (auto& [a, b] : kMap)
        if (!done && part.rfind(a, 0) == 0) {
          put(r + b + part.substr(std::strlen(a)));
          done = true;
        }
      if (done) continue;
      const bool bias = part == "attn.in_proj_bias";
      if (!bias && part != "attn.in_proj_weight") continue;
      const int64_t c = tc.hidden_size;
      const Shape s = bias ? Shape{c} : Shape{c, c};
      const size_t third = static_cast<size_t>(shape_numel(s)) * dtype_size(info.dtype);
      if (info.nbytes != 3 * third)
        fail(ErrorCode::kCorruptFile, "'" + f.path() + "': '" + name + "' is not [3C, C]");
      for (int q = 0; q < 3; ++q)
        out.tensors.push_back(
            TensorToWrite{r + "self_attn." + "qkv"[q] + std::string("_proj.") + (bias ? "bias" : "weight"),
                          info.dtype, s, info.data + q * third});
    }
  }
}

// Tensors under `root` with that prefix swapped for `to` (position_ids dropped: transformers rebuilds them).
void strip_prefix(const SafetensorsFile& f, const std::string& root, const std::string& to, Out& out) {
  for (auto& [name, info] : f.tensors())
    if (name.rfind(root, 0) == 0 && name.find("position_ids") == std::string::npos)
      out.tensors.push_back(TensorToWrite{to + name.substr(root.size()), info.dtype, info.shape, info.data});
}

nlohmann::json unet_json(const UNetConfig& c) {
  nlohmann::json j = {{"_class_name", "UNet2DConditionModel"},
                      {"act_fn", "silu"},
                      {"in_channels", c.in_channels},
                      {"out_channels", c.out_channels},
                      {"block_out_channels", c.block_out_channels},
                      {"down_block_types", c.down_block_types},
                      {"up_block_types", c.up_block_types},
                      {"mid_block_type", c.mid_block_type},
                      {"layers_per_block", c.layers_per_block.at(0)},
                      {"attention_head_dim", c.num_heads},
                      {"cross_attention_dim", c.cross_attention_dim.at(0)},
                      {"transformer_layers_per_block", c.transformer_layers},
                      {"use_linear_projection", c.use_linear_projection},
                      {"flip_sin_to_cos", c.flip_sin_to_cos},
                      {"freq_shift", c.freq_shift},
                      {"norm_num_groups", c.norm_num_groups},
                      {"norm_eps", c.norm_eps},
                      {"sample_size", c.sample_size},
                      {"time_embedding_type", "positional"}};
  if (c.has_text_time()) {
    j["addition_embed_type"] = "text_time";
    j["addition_embed_type_num_heads"] = 64;
    j["addition_time_embed_dim"] = c.addition_time_embed_dim;
    j["projection_class_embeddings_input_dim"] = c.projection_class_embeddings_input_dim;
  }
  return j;
}

nlohmann::json vae_json(const VaeConfig& c, int64_t sample_size) {
  const size_t n = c.block_out_channels.size();
  return {{"_class_name", "AutoencoderKL"},
          {"act_fn", "silu"},
          {"in_channels", c.in_channels},
          {"out_channels", c.out_channels},
          {"latent_channels", c.latent_channels},
          {"block_out_channels", c.block_out_channels},
          {"layers_per_block", c.layers_per_block},
          {"down_block_types", std::vector<std::string>(n, "DownEncoderBlock2D")},
          {"up_block_types", std::vector<std::string>(n, "UpDecoderBlock2D")},
          {"norm_num_groups", c.norm_num_groups},
          {"scaling_factor", c.scaling_factor},
          {"shift_factor", c.shift_factor == 0.0f ? nlohmann::json(nullptr) : nlohmann::json(c.shift_factor)},
          {"sample_size", sample_size}};
}

nlohmann::json clip_json(const ClipTextConfig& c) {
  const char* act = c.act == Act::kQuickGelu ? "quick_gelu" : c.act == Act::kGelu ? "gelu" : "gelu_new";
  nlohmann::json j = {
      {"architectures", {c.projection_dim > 0 ? "CLIPTextModelWithProjection" : "CLIPTextModel"}},
      {"model_type", "clip_text_model"},
      {"hidden_size", c.hidden_size},
      {"intermediate_size", c.intermediate_size},
      {"num_attention_heads", c.num_heads},
      {"num_hidden_layers", c.num_layers},
      {"max_position_embeddings", c.max_positions},
      {"vocab_size", c.vocab_size},
      {"layer_norm_eps", c.layer_norm_eps},
      {"hidden_act", act},
      {"bos_token_id", 0},
      {"eos_token_id", 2},
      {"pad_token_id", 1},
      {"torch_dtype", "float32"}};
  if (c.projection_dim > 0) j["projection_dim"] = c.projection_dim;
  return j;
}

void write_json(const std::string& path, const nlohmann::json& j) {
  write_file_atomic(path, j.dump(2) + "\n");
}

// vocab.json + merges.txt: the config folder's when given, else the built-in CLIP vocabulary.
void write_tokenizer(const ClipTokenizer& t, const std::string& dir, const std::string& from) {
  fs::create_directories(dir);
  if (!from.empty() && path_exists(from + "/vocab.json") && path_exists(from + "/merges.txt")) {
    for (const char* f : {"vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json"})
      if (path_exists(from + "/" + f))
        fs::copy_file(from + "/" + f, dir + "/" + f, fs::copy_options::overwrite_existing);
    return;
  }
  nlohmann::json vocab = nlohmann::json::object();
  for (auto& [tok, id] : t.vocab()) vocab[tok] = id;
  write_file_atomic(dir + "/vocab.json", vocab.dump());
  write_file_atomic(dir + "/merges.txt",
                    std::string(reinterpret_cast<const char*>(kClipMerges), kClipMerges_size));
  const std::string pad = t.pad_id() == t.eos_id() ? "<|endoftext|>" : "!";
  write_json(dir + "/tokenizer_config.json", {{"tokenizer_class", "CLIPTokenizer"},
                                              {"model_max_length", t.max_length()},
                                              {"do_lower_case", true},
                                              {"bos_token", "<|startoftext|>"},
                                              {"eos_token", "<|endoftext|>"},
                                              {"unk_token", "<|endoftext|>"},
                                              {"pad_token", pad},
                                              {"add_prefix_space", false},
                                              {"errors", "replace"}});
  write_json(dir + "/special_tokens_map.json", {{"bos_token", "<|startoftext|>"},
                                                {"eos_token", "<|endoftext|>"},
                                                {"unk_token", "<|endoftext|>"},
                                                {"pad_token", pad}});
}

}  // namespace

void convert_single_file_to_diffusers(const std::string& path, const std::string& out_dir,
                                      const std::string& config_dir, const std::string& tokenizer_dir) {
  if (is_gguf_file(path))  // quantised tensors have no safetensors dtype to copy them as
    fail(ErrorCode::kUnsupportedFormat, "'" + path + "' is a GGUF file; converting GGUF to a diffusers folder is not "
                                            "supported, load it directly with -m (or --unet for a UNet-only file)");
  auto model = load_ldm_checkpoint(path, tokenizer_dir, false, config_dir);
  auto file = SafetensorsFile::open(path);
  const SafetensorsFile& f = *file;
  const bool xl = model->text_encoder_2 != nullptr;
  const bool refiner = xl && !model->text_encoder;
  const UNetConfig& uc = model->unet->config();
  fs::create_directories(out_dir);
  auto write_component = [&](const std::string& comp, const char* weights, const Out& o,
                             const nlohmann::json& cfg) {
    if (o.tensors.empty()) fail(ErrorCode::kCorruptFile, "'" + path + "' has no " + comp + " weights");
    fs::create_directories(out_dir + "/" + comp);
    write_json(out_dir + "/" + comp + "/config.json", cfg);
    write_safetensors(out_dir + "/" + comp + "/" + weights, o.tensors, {{"format", "pt"}});
  };
  {
    Out o;
    rename_all(f, "model.diffusion_model.", unet_prefixes(uc), o, false);
    write_component("unet", "diffusion_pytorch_model.safetensors", o, unet_json(uc));
  }
  {
    Out o;
    rename_all(f, "first_stage_model.", vae_prefixes(model->vae->config()), o, true);
    write_component("vae", "diffusion_pytorch_model.safetensors", o,
                    vae_json(model->vae->config(), uc.sample_size * 8));
  }
  const std::string cfg_tok = config_dir.empty() ? "" : config_dir + "/";
  nlohmann::json index = {{"_diffusers_version", "0.30.0"},
                          {"unet", {"diffusers", "UNet2DConditionModel"}},
                          {"vae", {"diffusers", "AutoencoderKL"}},
                          {"scheduler", {"diffusers", model->scheduler.class_name}}};
  if (model->text_encoder) {
    Out o;
    if (xl)
      strip_prefix(f, "conditioner.embedders.0.transformer.", "", o);
    else if (f.has("cond_stage_model.transformer.text_model.embeddings.token_embedding.weight"))
      strip_prefix(f, "cond_stage_model.transformer.", "", o);
    else if (f.has("cond_stage_model.transformer.embeddings.token_embedding.weight"))
      strip_prefix(f, "cond_stage_model.transformer.", "text_model.", o);
    else
      openclip_to_hf(f, "cond_stage_model.model.", model->text_encoder->config(), o);
    write_component("text_encoder", "model.safetensors", o, clip_json(model->text_encoder->config()));
    write_tokenizer(*model->tokenizer, out_dir + "/tokenizer", cfg_tok.empty() ? "" : cfg_tok + "tokenizer");
    index["text_encoder"] = {"transformers", "CLIPTextModel"};
    index["tokenizer"] = {"transformers", "CLIPTokenizer"};
  } else {
    index["text_encoder"] = {nullptr, nullptr};
    index["tokenizer"] = {nullptr, nullptr};
  }
  if (xl) {
    Out o;
    openclip_to_hf(f, refiner ? "conditioner.embedders.0.model." : "conditioner.embedders.1.model.",
                   model->text_encoder_2->config(), o);
    write_component("text_encoder_2", "model.safetensors", o, clip_json(model->text_encoder_2->config()));
    write_tokenizer(*model->tokenizer_2, out_dir + "/tokenizer_2",
                    cfg_tok.empty() ? "" : cfg_tok + "tokenizer_2");
    index["_class_name"] = refiner ? "StableDiffusionXLImg2ImgPipeline" : "StableDiffusionXLPipeline";
    index["text_encoder_2"] = {"transformers", "CLIPTextModelWithProjection"};
    index["tokenizer_2"] = {"transformers", "CLIPTokenizer"};
    index["force_zeros_for_empty_prompt"] = model->force_zeros_for_empty_prompt;
    if (refiner) index["requires_aesthetics_score"] = model->requires_aesthetics_score;
  } else {
    index["_class_name"] = "StableDiffusionPipeline";
    index["safety_checker"] = {nullptr, nullptr};
    index["feature_extractor"] = {nullptr, nullptr};
    index["requires_safety_checker"] = false;
  }
  nlohmann::json sched = model->scheduler.raw;
  sched["_class_name"] = model->scheduler.class_name;
  sched["prediction_type"] = model->scheduler.prediction_type;
  if (model->scheduler.rescale_betas_zero_snr) sched["rescale_betas_zero_snr"] = true;
  fs::create_directories(out_dir + "/scheduler");
  write_json(out_dir + "/scheduler/scheduler_config.json", sched);
  write_json(out_dir + "/model_index.json", index);
}

}  // namespace vg
