#include "pipelines/sd_model.h"

#include <openssl/evp.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "core/hash.h"
#include "core/error.h"
#include "io/atomic_file.h"
#include "io/weights.h"
#include "models/config_util.h"
#include "lora/layer_registry.h"
#include "pipelines/ldm_checkpoint.h"
#include "pipelines/ldm_names.h"

namespace vg {

namespace fs = std::filesystem;

void fill_model_info(SdModel& m, const std::string& path, const std::string& name) {
  m.info.path = path;
  m.info.name = name;
  m.info.prediction_type = m.scheduler.prediction_type;
  const int scale = static_cast<int>(m.vae->scale());
  m.info.vae_scale = scale;
  // SDXL follows diffusers (multiples of the VAE factor: the UNet upsamples to
  // each skip's size); SD 1.x/2.x keep sizes every UNet level halves evenly.
  m.info.size_multiple = m.text_encoder_2 ? scale : scale * static_cast<int>(m.unet->size_multiple());
  const int native = static_cast<int>(m.unet->config().sample_size) * scale;
  m.info.default_width = m.info.default_height = native;
  if (m.text_encoder_2) m.info.family = "sdxl";
  else m.info.family = m.text_encoder->config().act == Act::kQuickGelu ? "sd1" : "sd2";
}

std::unique_ptr<ClipTextModel> load_folder_text_encoder(const std::string& dir, const char* comp, bool bf16,
                                                        const std::shared_ptr<LayerRegistry>& layers) {
  auto w = open_component_weights(dir + "/" + comp, comp);
  w.set_compute_bf16(bf16);
  w.set_layer_registry(layers);
  return std::make_unique<ClipTextModel>(ClipTextConfig::from_json_file(dir + "/" + comp + "/config.json"), w, "",
                                         /*lazy=*/true);
}

void load_folder_denoiser(SdModel& m, const std::string& dir, bool bf16, const SchedulerConfig& fallback) {
  {
    auto w = open_component_weights(dir + "/unet", "unet");
    w.set_compute_bf16(bf16);
    w.set_layer_registry(m.unet_layers);
    const UNetConfig uc = UNetConfig::from_json_file(dir + "/unet/config.json");
    m.unet = std::make_unique<UNet>(uc, w);
    m.unet_sgm_name = unet_sgm_namer(uc);
  }
  {
    auto w = open_component_weights(dir + "/vae", "vae");
    w.set_compute_bf16(bf16);
    m.vae = std::make_unique<AutoencoderKL>(VaeConfig::from_json_file(dir + "/vae/config.json"), w);
  }
  m.scheduler = path_exists(dir + "/scheduler/scheduler_config.json")
                    ? SchedulerConfig::from_json_file(dir + "/scheduler/scheduler_config.json")
                    : fallback;
  for (const char* f : {"/unet/diffusion_pytorch_model.safetensors", "/unet/diffusion_pytorch_model.fp16.safetensors"})
    if (path_exists(dir + f)) {
      m.hash_source = dir + f;
      break;
    }
  const fs::path p(dir);
  fill_model_info(m, dir, p.filename().string().empty() ? p.parent_path().filename().string() : p.filename().string());
}

std::unique_ptr<SdModel> load_diffusers_folder(const std::string& dir, bool bf16) {
  auto index = read_json_file(dir + "/model_index.json", "pipeline");
  std::string cls = index.value("_class_name", std::string());
  if (cls.find("XL") != std::string::npos || index.contains("text_encoder_2")) return load_sdxl_folder(dir, bf16);
  if (cls.find("Flux") != std::string::npos || cls.find("StableDiffusion3") != std::string::npos)
    fail(ErrorCode::kUnsupportedModel, "'" + dir + "' is a " + cls + " pipeline, which is not supported yet");
  for (const char* c : {"tokenizer", "text_encoder", "unet", "vae"})
    if (!index.contains(c) || index[c].is_null() || !is_directory(dir + "/" + c))
      fail(ErrorCode::kMissingComponent, "the model folder '" + dir + "' has no '" + c +
                                             "' component; download the full pipeline");
  auto m = std::make_unique<SdModel>();
  m->unet_layers = std::make_shared<LayerRegistry>();
  m->text_encoder_layers = std::make_shared<LayerRegistry>();
  m->tokenizer = std::make_unique<ClipTokenizer>(ClipTokenizer::load(dir + "/tokenizer"));
  m->text_encoder = load_folder_text_encoder(dir, "text_encoder", bf16, m->text_encoder_layers);
  load_folder_denoiser(*m, dir, bf16, SchedulerConfig::sd15_default());
  return m;
}

std::unique_ptr<SdModel> load_sd_model(const std::string& path, const std::string& tokenizer_dir, bool bf16,
                                       const std::string& config_dir) {
  if (path.empty()) fail(ErrorCode::kInvalidArgument, "no model given; pass -m PATH (a diffusers folder or .safetensors file)");
  if (!path_exists(path))
    fail(ErrorCode::kFileNotFound, "model path '" + path + "' does not exist; check the path");
  if (is_directory(path)) {
    if (path_exists(path + "/model_index.json")) return load_diffusers_folder(path, bf16);
    fail(ErrorCode::kMissingComponent, "'" + path + "' has no model_index.json; pass a diffusers "
                                           "pipeline folder or a single .safetensors checkpoint");
  }
  if (is_pickle_path(path)) refuse_pickle(path);
  auto m = load_ldm_checkpoint(path, tokenizer_dir, bf16, config_dir);
  fill_model_info(*m, path, fs::path(path).stem().string());
  m->hash_source = path;
  return m;
}

std::function<std::string(const std::string&)> unet_sgm_namer(const UNetConfig& cfg) {
  const int L = cfg.layers_per_block.empty() ? 2 : static_cast<int>(cfg.layers_per_block.front());
  std::vector<bool> up_attn;
  for (const auto& t : cfg.up_block_types) up_attn.push_back(t.find("CrossAttn") != std::string::npos);
  return [L, up_attn](const std::string& name) -> std::string {
    static const std::string kPrefix = "model.diffusion_model.", kSuffix = ".weight";
    std::string s;
    try {
      s = unet_to_ldm(name + kSuffix, L, up_attn);
    } catch (const std::exception&) {
      return "";
    }
    if (s.rfind(kPrefix, 0) == 0) s = s.substr(kPrefix.size());
    if (s.size() > kSuffix.size() && s.compare(s.size() - kSuffix.size(), kSuffix.size(), kSuffix) == 0)
      s.resize(s.size() - kSuffix.size());
    return s;
  };
}

std::string model_hash(const std::string& path) {
  if (path.empty()) return "";
  return sha256_file_hex(path).substr(0, 10);
}

}  // namespace vg
