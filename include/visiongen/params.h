// GenerateParams: the single description of a generation request. The CLI
// flags, validation and the metadata written into images all come from the
// field table in params.cpp (param_fields()).
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "visiongen/error.h"

namespace vg {

struct GenerateParams {
  // text_to_image | image_to_image | inpaint | text_to_video | image_to_video | upscale;
  // "auto" = from the inputs. Tasks no engine runs yet fail with capability_not_supported.
  std::string task = "auto";
  std::string mode = "normal";       // preset mode: normal | lcm | turbo | lightning
  // JSON names of the fields the caller set; presets fill only the others.
  // Empty with mode "normal" = no preset.
  std::vector<std::string> set_fields;
  std::string prompt;
  std::string negative_prompt;
  int width = 0;             // 0 = the model's native size
  int height = 0;
  int steps = 20;
  float cfg_scale = 7.5f;
  int64_t seed = -1;         // -1 = random
  int clip_skip = 1;         // A1111 meaning: 1 = last layer, 2 = penultimate
  std::string sampler = "euler";     // ours, A1111 ("DPM++ 2M Karras"), ComfyUI or diffusers class name
  std::string scheduler = "default"; // sigma schedule: karras, exponential, normal, ... (see 'visiongen samplers')
  std::string rng = "cpu";           // cpu (torch CPU, diffusers/ComfyUI seeds) | philox (A1111 GPU seeds)
  float eta = -1.0f;                 // -1 = the sampler's default (DDIM 0, ancestral 1, TCD 0.3)
  float s_noise = 1.0f;              // noise multiplier for ancestral/SDE samplers
  float s_churn = 0.0f;              // Euler churn (Karras et al.)
  int batch_size = 1;
  std::string loras;                 // "name:weight,..." (see docs/lora.md; <lora:name:w> prompt tags add to it)
  int preview_every = 0;             // progress callbacks carry a latent preview every N steps (0 = none)
  // Image-to-image / inpainting (empty init_image = text-to-image).
  std::string init_image;              // PNG/JPEG/WebP path
  float strength = 0.75f;              // (0, 1]: how much of the schedule is re-run
  std::string mask;                    // white = repaint; a mask with transparency uses alpha (transparent = repaint)
  float mask_blur = 0.0f;              // Gaussian sigma in pixels; feathers the edge inward
  bool invert_mask = false;            // repaint the black (unmasked) area instead
  bool inpaint_full_res = false;       // "only masked": work on a crop around the mask, paste back
  int inpaint_full_res_padding = 32;   // pixels around the mask for inpaint_full_res
  std::string resize_mode = "just_resize";  // just_resize | crop_and_resize | resize_and_fill | none (error)
  std::string paste_back = "auto";     // auto | on | off: composite the result over the original outside the mask
  std::string vae_tiling = "auto";     // auto (tiles above 768x768; Wan video above 512x512) | on | off: decode in overlapping tiles, bounded memory
  // SDXL (diffusers' StableDiffusionXL*Pipeline arguments).
  std::string prompt_2;                // second text encoder's prompt ("" = prompt)
  std::string negative_prompt_2;       // "" = negative_prompt
  std::string original_size;           // "WxH" micro-conditioning; "" = the output size
  std::string target_size;             // "WxH"; "" = the output size
  std::string crop_coords;             // "X,Y" (left, top); "" = 0,0
  std::string negative_original_size;  // "WxH"; with negative_target_size: the negative pass's own time ids
  std::string negative_target_size;
  std::string negative_crop_coords;
  float aesthetic_score = 6.0f;        // refiner models only
  float negative_aesthetic_score = 2.5f;
  std::string refiner;                 // SDXL refiner model that finishes the base's denoising
  float refiner_switch = 0.8f;         // fraction of the schedule the base runs (diffusers' denoising_end)
  std::string vae;                     // replacement VAE: folder or .safetensors (e.g. SDXL fp16-fix), or a TAESD folder
  std::string preview = "auto";        // auto | latent2rgb | taesd | none: how previews are drawn
  std::string preview_vae;             // TAESD folder for --preview taesd
  std::string prompt_syntax = "diffusers";  // diffusers (plain, 77 tokens) | a1111 ((word:1.2), [word], BREAK, long prompts)
  // Diffusion transformers (FLUX, SD3).
  float guidance = -1.0f;              // FLUX-dev distilled guidance (diffusers' guidance_scale); -1 = the model's default
  int max_sequence_length = 0;         // T5 tokens (diffusers' max_sequence_length); 0 = the model's default
  std::string prompt_3;                // SD3: the T5 prompt ("" = prompt)
  std::string negative_prompt_3;       // SD3: "" = negative_prompt
  std::string skip_layers;             // SD3.5 skip-layer guidance: block indices "7,8,9"; "" = off
  float skip_layer_scale = 2.8f;
  float skip_layer_start = 0.01f;      // fraction of the steps where skip-layer guidance starts
  float skip_layer_stop = 0.2f;        // and stops
  int frames = 0;                      // video: frames (4k+1 for Wan; 0 = the model's default)
  float fps = 0.0f;                    // video: frames per second of the output (0 = the model's default: 24 Wan 2.2)
  bool strict = false;                 // refuse values the model would round (frames not 4k+1) instead of warning
};

// Describes one field for CLI/HTTP/metadata generation.
struct ParamField {
  const char* name;        // snake_case JSON / flag name
  const char* flag;        // CLI long flag
  const char* short_flag;  // "" if none
  const char* infotext;    // A1111 infotext key ("" if not written)
  const char* help;
};
const std::vector<ParamField>& param_fields();

// "WxH" (sep 'x', both > 0) or "X,Y" (sep ',', both >= 0) -> *out (may be null). false if malformed.
bool parse_pair(const std::string& s, char sep, std::pair<int, int>* out);

// Model-independent checks (ranges, sizes). Engine::validate adds model checks.
Status validate_params(const GenerateParams& p);

// A1111 "parameters" text: prompt, Negative prompt, Steps, Sampler, ...
std::string format_infotext(const GenerateParams& p, uint64_t seed, int width, int height,
                            const std::string& model_name, const std::string& model_hash);

}  // namespace vg
