#include "cli/synth_model.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <vector>

#include "core/error.h"
#include "io/atomic_file.h"
#include "io/weights.h"
#include "models/autoencoder_kl.h"
#include "models/unet.h"
#include "models/wan.h"
#include "models/wan_vae.h"
#include "models/zimage.h"
#include "text/clip_text_model.h"
#include "text/qwen_encoder.h"
#include "text/t5_encoder.h"

namespace vg::cli {

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// float32 -> IEEE half, round to nearest; magnitudes below the normal range
// flush to zero (the random values here never need subnormals).
uint16_t to_f16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  const int32_t e = static_cast<int32_t>((x >> 23) & 0xff) - 127 + 15;
  if (e <= 0) return sign;
  if (e >= 31) return sign | 0x7c00u;
  const uint32_t h = (static_cast<uint32_t>(e) << 10) | ((x & 0x7fffffu) >> 13);
  return static_cast<uint16_t>(sign | (h + ((x >> 12) & 1u)));  // carry may bump the exponent: still right
}

// Small random values that keep activations finite through the whole model:
// matrices ~uniform with std min(0.02, 1/sqrt(fan_in)), biases 0, norm scales 1.
void fill(const std::string& name, const Shape& shape, uint32_t seed, std::vector<uint16_t>& out) {
  const int64_t n = shape_numel(shape);
  out.resize(static_cast<size_t>(n));
  if (shape.size() == 1) {
    const bool scale = name.find("norm") != std::string::npos && name.size() > 7 &&
                       name.compare(name.size() - 7, 7, ".weight") == 0;
    std::fill(out.begin(), out.end(), scale ? to_f16(1.0f) : uint16_t{0});
    return;
  }
  const double fan_in = static_cast<double>(n / shape[0]);
  const float a = static_cast<float>(std::min(0.02, 1.0 / std::sqrt(fan_in)) * std::sqrt(3.0));
  uint32_t x = seed * 0x9E3779B9u + 0x7F4A7C15u;
  for (char ch : name) x = (x ^ static_cast<uint8_t>(ch)) * 16777619u;
  if (x == 0) x = 1;
  for (auto& v : out) {
    x ^= x << 13, x ^= x >> 17, x ^= x << 5;  // xorshift32
    v = to_f16((static_cast<float>(x >> 8) * (1.0f / 8388608.0f) - 1.0f) * a);
  }
}

// Streams one tensor at a time (the UNet alone is 5 GB in f16).
void write_random_f16(const std::string& path, const WeightStore::Requests& req, uint32_t seed) {
  json header = json::object();
  header["__metadata__"] = {{"format", "pt"}, {"note", "visiongen synthetic random weights"}};
  size_t offset = 0;
  for (const auto& [name, shape] : req) {  // std::map order = the order written below
    const size_t nb = static_cast<size_t>(shape_numel(shape)) * 2;
    header[name] = {{"dtype", "F16"}, {"shape", shape}, {"data_offsets", {offset, offset + nb}}};
    offset += nb;
  }
  std::string h = header.dump();
  while (h.size() % 8) h.push_back(' ');
  AtomicFile f(path);
  const uint64_t hn = h.size();
  f.write(&hn, 8);
  f.write(h);
  std::vector<uint16_t> buf;
  for (const auto& [name, shape] : req) {
    fill(name, shape, seed, buf);
    f.write(buf.data(), buf.size() * 2);
  }
  f.commit();
}

void write_json(const std::string& path, const json& j) { write_file_atomic(path, j.dump(2) + "\n"); }

json unet_config() {
  return {{"_class_name", "UNet2DConditionModel"}, {"_diffusers_version", "0.19.0.dev0"}, {"act_fn", "silu"},
          {"addition_embed_type", "text_time"}, {"addition_embed_type_num_heads", 64}, {"addition_time_embed_dim", 256},
          {"attention_head_dim", {5, 10, 20}}, {"block_out_channels", {320, 640, 1280}}, {"center_input_sample", false},
          {"class_embed_type", nullptr}, {"class_embeddings_concat", false}, {"conv_in_kernel", 3}, {"conv_out_kernel", 3},
          {"cross_attention_dim", 2048}, {"cross_attention_norm", nullptr},
          {"down_block_types", {"DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"}}, {"downsample_padding", 1},
          {"dual_cross_attention", false}, {"encoder_hid_dim", nullptr}, {"encoder_hid_dim_type", nullptr},
          {"flip_sin_to_cos", true}, {"freq_shift", 0}, {"in_channels", 4}, {"layers_per_block", 2},
          {"mid_block_only_cross_attention", nullptr}, {"mid_block_scale_factor", 1}, {"mid_block_type", "UNetMidBlock2DCrossAttn"},
          {"norm_eps", 1e-05}, {"norm_num_groups", 32}, {"num_attention_heads", nullptr}, {"num_class_embeds", nullptr},
          {"only_cross_attention", false}, {"out_channels", 4}, {"projection_class_embeddings_input_dim", 2816},
          {"resnet_out_scale_factor", 1.0}, {"resnet_skip_time_act", false}, {"resnet_time_scale_shift", "default"},
          {"sample_size", 128}, {"time_cond_proj_dim", nullptr}, {"time_embedding_act_fn", nullptr},
          {"time_embedding_dim", nullptr}, {"time_embedding_type", "positional"}, {"timestep_post_act", nullptr},
          {"transformer_layers_per_block", {1, 2, 10}},
          {"up_block_types", {"CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"}}, {"upcast_attention", nullptr},
          {"use_linear_projection", true}};
}

json vae_config() {
  return {{"_class_name", "AutoencoderKL"}, {"_diffusers_version", "0.20.0.dev0"}, {"act_fn", "silu"},
          {"block_out_channels", {128, 256, 512, 512}},
          {"down_block_types", {"DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"}},
          {"force_upcast", true}, {"in_channels", 3}, {"latent_channels", 4}, {"layers_per_block", 2},
          {"norm_num_groups", 32}, {"out_channels", 3}, {"sample_size", 1024}, {"scaling_factor", 0.13025},
          {"up_block_types", {"UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"}}};
}

json clip_config(bool big) {
  return {{"architectures", {big ? "CLIPTextModelWithProjection" : "CLIPTextModel"}}, {"attention_dropout", 0.0},
          {"bos_token_id", 0}, {"dropout", 0.0}, {"eos_token_id", 2}, {"hidden_act", big ? "gelu" : "quick_gelu"},
          {"hidden_size", big ? 1280 : 768}, {"initializer_factor", 1.0}, {"initializer_range", 0.02},
          {"intermediate_size", big ? 5120 : 3072}, {"layer_norm_eps", 1e-05}, {"max_position_embeddings", 77},
          {"model_type", "clip_text_model"}, {"num_attention_heads", big ? 20 : 12}, {"num_hidden_layers", big ? 32 : 12},
          {"pad_token_id", 1}, {"projection_dim", big ? 1280 : 768}, {"torch_dtype", "float16"},
          {"transformers_version", "4.32.0.dev0"}, {"vocab_size", 49408}};
}

json model_index() {
  return {{"_class_name", "StableDiffusionXLPipeline"}, {"_diffusers_version", "0.19.0.dev0"},
          {"force_zeros_for_empty_prompt", true}, {"add_watermarker", nullptr},
          {"scheduler", {"diffusers", "EulerDiscreteScheduler"}}, {"text_encoder", {"transformers", "CLIPTextModel"}},
          {"text_encoder_2", {"transformers", "CLIPTextModelWithProjection"}}, {"tokenizer", {"transformers", "CLIPTokenizer"}},
          {"tokenizer_2", {"transformers", "CLIPTokenizer"}}, {"unet", {"diffusers", "UNet2DConditionModel"}},
          {"vae", {"diffusers", "AutoencoderKL"}}};
}

json scheduler_config() {
  return {{"_class_name", "EulerDiscreteScheduler"}, {"_diffusers_version", "0.19.0.dev0"}, {"beta_end", 0.012},
          {"beta_schedule", "scaled_linear"}, {"beta_start", 0.00085}, {"clip_sample", false},
          {"interpolation_type", "linear"}, {"num_train_timesteps", 1000}, {"prediction_type", "epsilon"},
          {"sample_max_value", 1.0}, {"set_alpha_to_one", false}, {"skip_prk_steps", true}, {"steps_offset", 1},
          {"timestep_spacing", "leading"}, {"trained_betas", nullptr}, {"use_karras_sigmas", false}};
}

// A synthetic store that only notes what the model built from it asks for.
std::pair<WeightStore, std::shared_ptr<WeightStore::Requests>> recorder() {
  WeightStore ws;
  ws.make_synthetic(0);
  auto req = std::make_shared<WeightStore::Requests>();
  ws.record_requests(req);
  return {std::move(ws), req};
}

// Writes `path` with the names and shapes `build` asks a recording store for
// (kept when it exists: files appear whole, so a rerun finishes an interrupted write).
template <class Build>
void emit(const std::string& path, uint32_t seed, Build build, bool (*drop)(const std::string&) = nullptr) {
  if (fs::exists(path)) {
    std::printf("%s: kept\n", path.c_str());
    return;
  }
  auto [ws, req] = recorder();
  build(ws);
  if (drop)
    for (auto it = req->begin(); it != req->end();) it = drop(it->first) ? req->erase(it) : std::next(it);
  write_random_f16(path, *req, seed);
  std::printf("%s: %zu tensors, %.2f GB\n", path.c_str(), req->size(), fs::file_size(path) / 1e9);
  std::fflush(stdout);
}

// Synthetic stores say yes to every optional weight; diffusers' transformer
// attention has no q/k/v biases (the VAE's attention does).
bool unet_attention_bias(const std::string& n) {
  return n.find(".transformer_blocks.") != std::string::npos &&
         (n.ends_with("to_q.bias") || n.ends_with("to_k.bias") || n.ends_with("to_v.bias"));
}
// Qwen3 has q/k norms but no q/k/v biases.
bool qwen3_bias(const std::string& n) { return n.ends_with("_proj.bias"); }

}  // namespace

void write_synthetic_sdxl(const std::string& dir, const std::string& tokenizer_src, uint32_t seed) {
  for (const char* t : {"tokenizer", "tokenizer_2"})
    if (!fs::exists(tokenizer_src + "/" + t + "/vocab.json"))
      fail(ErrorCode::kFileNotFound, "'" + tokenizer_src + "/" + t + "/vocab.json' does not exist; --tokenizers-from "
                                     "must name an SDXL diffusers folder with tokenizer/ and tokenizer_2/");
  for (const char* c : {"unet", "vae", "text_encoder", "text_encoder_2", "scheduler"}) fs::create_directories(dir + "/" + c);
  for (const char* t : {"tokenizer", "tokenizer_2"})
    fs::copy(tokenizer_src + "/" + t, dir + "/" + t, fs::copy_options::recursive | fs::copy_options::overwrite_existing);
  write_json(dir + "/model_index.json", model_index());
  write_json(dir + "/scheduler/scheduler_config.json", scheduler_config());
  write_json(dir + "/unet/config.json", unet_config());
  write_json(dir + "/vae/config.json", vae_config());
  write_json(dir + "/text_encoder/config.json", clip_config(false));
  write_json(dir + "/text_encoder_2/config.json", clip_config(true));
  // Each model is built from the config just written, so the files hold
  // exactly the names and shapes the loader asks for.
  emit(dir + "/unet/diffusion_pytorch_model.safetensors", seed,
       [&](const WeightStore& ws) { UNet u(UNetConfig::from_json_file(dir + "/unet/config.json"), ws); },
       unet_attention_bias);
  emit(dir + "/vae/diffusion_pytorch_model.safetensors", seed,
       [&](const WeightStore& ws) { AutoencoderKL v(VaeConfig::from_json_file(dir + "/vae/config.json"), ws, true); });
  for (const std::string te : {"text_encoder", "text_encoder_2"})
    emit(dir + "/" + te + "/model.safetensors", seed, [&](const WeightStore& ws) {
      ClipTextModel m(ClipTextConfig::from_json_file(dir + "/" + te + "/config.json"), ws, "", /*lazy=*/true);
    });
}

void write_synthetic_zimage(const std::string& dir, const std::string& tokenizer_src, uint32_t seed) {
  if (!fs::exists(tokenizer_src + "/tokenizer/tokenizer_config.json"))
    fail(ErrorCode::kFileNotFound, "'" + tokenizer_src + "/tokenizer/tokenizer_config.json' does not exist; "
                                   "--tokenizers-from must name a Z-Image diffusers folder with tokenizer/");
  for (const char* c : {"vae", "text_encoder", "scheduler"}) fs::create_directories(dir + "/" + c);
  fs::copy(tokenizer_src + "/tokenizer", dir + "/tokenizer", fs::copy_options::recursive | fs::copy_options::overwrite_existing);
  write_json(dir + "/scheduler/scheduler_config.json",
             {{"_class_name", "FlowMatchEulerDiscreteScheduler"}, {"num_train_timesteps", 1000}, {"shift", 3.0},
              {"use_dynamic_shifting", false}});
  // Qwen3-4B and the FLUX.1 VAE, as Z-Image-Turbo ships them
  write_json(dir + "/text_encoder/config.json",
             {{"architectures", {"Qwen3ForCausalLM"}}, {"model_type", "qwen3"}, {"hidden_size", 2560},
              {"intermediate_size", 9728}, {"num_hidden_layers", 36}, {"num_attention_heads", 32},
              {"num_key_value_heads", 8}, {"head_dim", 128}, {"vocab_size", 151936}, {"rms_norm_eps", 1e-6},
              {"rope_theta", 1000000.0}});
  json vae = vae_config();
  vae.update({{"latent_channels", 16}, {"scaling_factor", 0.3611}, {"shift_factor", 0.1159}, {"use_quant_conv", false},
              {"use_post_quant_conv", false}});
  write_json(dir + "/vae/config.json", vae);
  // The transformer in the original single-file layout (z_image_turbo_bf16.safetensors), the real config.
  emit(dir + "/z_image_turbo_synthetic.safetensors", seed,
       [&](const WeightStore& ws) { ZImageTransformer t(ZImageConfig{}, ws); });
  emit(dir + "/vae/diffusion_pytorch_model.safetensors", seed,
       [&](const WeightStore& ws) { AutoencoderKL v(VaeConfig::from_json_file(dir + "/vae/config.json"), ws, true); });
  emit(dir + "/text_encoder/model.safetensors", seed, [&](const WeightStore& ws) {
    QwenTextEncoder e(QwenTextConfig::from_json_file(dir + "/text_encoder/config.json"), ws, "", /*lazy=*/true);
  }, qwen3_bias);
}

void write_synthetic_wan(const std::string& dir, const std::string& tokenizer_src, uint32_t seed) {
  if (!fs::exists(tokenizer_src + "/tokenizer/spiece.model") && !fs::exists(tokenizer_src + "/tokenizer/tokenizer.json"))
    fail(ErrorCode::kFileNotFound, "'" + tokenizer_src + "/tokenizer' holds no spiece.model or tokenizer.json; "
                                   "--tokenizers-from must name a Wan diffusers folder with tokenizer/");
  for (const char* c : {"vae", "text_encoder", "scheduler"}) fs::create_directories(dir + "/" + c);
  fs::copy(tokenizer_src + "/tokenizer", dir + "/tokenizer", fs::copy_options::recursive | fs::copy_options::overwrite_existing);
  write_json(dir + "/scheduler/scheduler_config.json",
             {{"_class_name", "UniPCMultistepScheduler"}, {"num_train_timesteps", 1000}, {"prediction_type", "flow_prediction"},
              {"use_flow_sigmas", true}, {"flow_shift", 5.0}, {"solver_order", 2}, {"solver_type", "bh2"},
              {"predict_x0", true}, {"lower_order_final", true}, {"final_sigmas_type", "zero"}});
  // UMT5-XXL and the Wan 2.2 VAE, as Wan2.2-TI2V-5B-Diffusers ships them
  write_json(dir + "/text_encoder/config.json",
             {{"architectures", {"UMT5EncoderModel"}}, {"model_type", "umt5"}, {"d_model", 4096}, {"d_ff", 10240},
              {"d_kv", 64}, {"num_heads", 64}, {"num_layers", 24}, {"vocab_size", 256384},
              {"feed_forward_proj", "gated-gelu"}, {"dense_act_fn", "gelu_new"}, {"layer_norm_epsilon", 1e-6},
              {"relative_attention_num_buckets", 32}, {"relative_attention_max_distance", 128}});
  write_json(dir + "/vae/config.json",
             {{"_class_name", "AutoencoderKLWan"}, {"base_dim", 160}, {"decoder_base_dim", 256}, {"dim_mult", {1, 2, 4, 4}},
              {"in_channels", 12}, {"out_channels", 12}, {"is_residual", true}, {"patch_size", 2}, {"num_res_blocks", 2},
              {"z_dim", 48}, {"attn_scales", json::array()}, {"temperal_downsample", {false, true, true}},
              {"scale_factor_spatial", 16}, {"scale_factor_temporal", 4}});
  // The transformer in ComfyUI's single-file layout (original Wan names), the real config.
  emit(dir + "/wan2.2_ti2v_5B_synthetic.safetensors", seed,
       [&](const WeightStore& ws) { WanTransformer t(WanTransformerConfig{}, ws); });
  emit(dir + "/vae/diffusion_pytorch_model.safetensors", seed,
       [&](const WeightStore& ws) { WanVae v(WanVaeConfig::from_json_file(dir + "/vae/config.json"), ws, true); });
  emit(dir + "/text_encoder/model.safetensors", seed, [&](const WeightStore& ws) {
    T5Encoder e(T5Config::from_json_file(dir + "/text_encoder/config.json"), ws, "", /*lazy=*/true);
  });
}

}  // namespace vg::cli
