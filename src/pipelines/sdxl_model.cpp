// SDXL diffusers folders: StableDiffusionXLPipeline (base, Turbo, finetunes),
// StableDiffusionXLImg2ImgPipeline (the refiner: text_encoder_2 only) and
// StableDiffusionXLInpaintPipeline (9-channel UNet).
#include "core/error.h"
#include "io/atomic_file.h"
#include "io/weights.h"
#include "lora/layer_registry.h"
#include "models/config_util.h"
#include "pipelines/sd_model.h"

namespace vg {

namespace {

bool has_component(const nlohmann::json& index, const std::string& dir, const char* c) {
  return index.contains(c) && index[c].is_array() && !index[c].empty() && !index[c][0].is_null() &&
         is_directory(dir + "/" + c);
}

}  // namespace

std::unique_ptr<SdModel> load_sdxl_folder(const std::string& dir, bool bf16) {
  auto index = read_json_file(dir + "/model_index.json", "pipeline");
  for (const char* c : {"tokenizer_2", "text_encoder_2", "unet", "vae"})
    if (!has_component(index, dir, c))
      fail(ErrorCode::kMissingComponent, "the SDXL folder '" + dir + "' has no '" + c +
                                             "' component; download the full pipeline");
  auto m = std::make_unique<SdModel>();
  m->unet_layers = std::make_shared<LayerRegistry>();
  m->text_encoder_layers = std::make_shared<LayerRegistry>();
  m->text_encoder_2_layers = std::make_shared<LayerRegistry>();
  // The refiner has no first text encoder (model_index says [null, null]).
  if (has_component(index, dir, "text_encoder") && has_component(index, dir, "tokenizer")) {
    m->tokenizer = std::make_unique<ClipTokenizer>(ClipTokenizer::load(dir + "/tokenizer"));
    m->tokenizer->set_flavor(ClipTokenizer::Flavor::kFast);  // diffusers runs transformers' fast tokenizer
    m->text_encoder = load_folder_text_encoder(dir, "text_encoder", bf16, m->text_encoder_layers);
  }
  m->tokenizer_2 = std::make_unique<ClipTokenizer>(ClipTokenizer::load(dir + "/tokenizer_2"));
  m->tokenizer_2->set_flavor(ClipTokenizer::Flavor::kFast);
  m->text_encoder_2 = load_folder_text_encoder(dir, "text_encoder_2", bf16, m->text_encoder_2_layers);
  if (m->text_encoder_2->config().projection_dim <= 0)
    fail(ErrorCode::kCorruptFile, "'" + dir + "/text_encoder_2/config.json' is not a CLIPTextModelWithProjection; "
                                  "SDXL's second text encoder needs its text_projection");
  m->force_zeros_for_empty_prompt = index.value("force_zeros_for_empty_prompt", true);
  m->requires_aesthetics_score = index.value("requires_aesthetics_score", false);
  load_folder_denoiser(*m, dir, bf16, SchedulerConfig::sdxl_default());
  if (!m->unet->config().has_text_time())
    fail(ErrorCode::kCorruptFile, "'" + dir + "/unet/config.json' lacks SDXL's addition_embed_type \"text_time\"");
  return m;
}

}  // namespace vg
