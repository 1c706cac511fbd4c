#include <algorithm>
#include <cctype>
#include <cmath>
#include <sstream>

#include "core/infotext.h"
#include "visiongen/params.h"

namespace vg {

const std::vector<ParamField>& param_fields() {
  static const std::vector<ParamField> kFields = {
      {"task", "--task", "", "", "text_to_image, image_to_image, inpaint, text_to_video, image_to_video (auto from the model and the inputs); upscale is reported as not supported"},
      {"mode", "--mode", "", "", "preset mode: normal, lcm, turbo, lightning (fills only what you did not set)"},
      {"prompt", "--prompt", "-p", "", "text describing the image"},
      {"loras", "--lora", "", "", "LoRA to apply as name:weight (weight 1 if left out); repeat it or separate with commas. A name is a .safetensors path or a file in --lora-dir / $VG_LORA_DIR; <lora:name:weight> in the prompt works too"},
      {"negative_prompt", "--negative-prompt", "-n", "Negative prompt", "what the image should not show"},
      {"steps", "--steps", "", "Steps", "number of denoising steps (1-1000)"},
      {"sampler", "--sampler", "", "Sampler", "sampler name (see 'visiongen samplers')"},
      {"scheduler", "--scheduler", "", "Schedule type", "sigma schedule: default, karras, exponential, beta, normal, simple, sgm_uniform, ddim_uniform, ays, leading, trailing, linspace"},
      {"rng", "--rng", "", "RNG", "noise source: cpu (torch CPU generator, diffusers/ComfyUI seeds) or philox (torch CUDA generator, A1111/Forge GPU seeds)"},
      {"eta", "--eta", "", "Eta", "noise amount for DDIM/ancestral/SDE/TCD samplers (-1 = sampler default)"},
      {"s_noise", "--s-noise", "", "s_noise", "multiplier on injected noise (ancestral/SDE samplers)"},
      {"s_churn", "--s-churn", "", "s_churn", "Euler churn: extra noise per step (Karras et al. 2022)"},
      {"cfg_scale", "--cfg-scale", "", "CFG scale", "classifier-free guidance scale; 1 disables the negative pass"},
      {"seed", "--seed", "-s", "Seed", "random seed; -1 picks one. Same seed = same image as diffusers on CPU"},
      {"width", "--width", "-W", "Size", "image width in pixels (0 = model default; multiple of the model's factor)"},
      {"height", "--height", "-H", "Size", "image height in pixels (0 = model default)"},
      {"clip_skip", "--clip-skip", "", "Clip skip", "use the Nth-from-last text encoder layer (A1111: 1 = last, 2 = penultimate)"},
      {"init_image", "--init-image", "-i", "", "start from this image (PNG/JPEG/WebP): image-to-image"},
      {"strength", "--strength", "", "Denoising strength", "image-to-image: fraction of the schedule re-run, in (0, 1]"},
      {"mask", "--mask", "", "", "inpaint: white = repaint, black = keep (a mask with transparency: transparent = repaint)"},
      {"mask_blur", "--mask-blur", "", "Mask blur", "inpaint: blur of the mask edge in pixels (feathers inward)"},
      {"invert_mask", "--invert-mask", "", "Mask mode", "inpaint: repaint the black area instead of the white one"},
      {"inpaint_full_res", "--inpaint-full-res", "", "Inpaint area", "inpaint only a crop around the mask at full resolution, then paste it back"},
      {"inpaint_full_res_padding", "--inpaint-full-res-padding", "", "Masked area padding", "pixels of context around the mask for --inpaint-full-res"},
      {"resize_mode", "--resize-mode", "", "Resize mode", "init image of another size: just_resize, crop_and_resize, resize_and_fill, or none (error)"},
      {"paste_back", "--paste-back", "", "", "inpaint: auto (on for normal models and --inpaint-full-res), on, off"},
      {"batch_size", "--batch-size", "-b", "", "images per run; image i uses seed+i (1-16)"},
      {"vae_tiling", "--vae-tiling", "", "", "decode in overlapping tiles with blended seams: auto (above 768x768; Wan video: 256-pixel tiles above 512x512), on, off"},
      {"prompt_2", "--prompt-2", "", "", "SDXL: prompt for the second text encoder (OpenCLIP bigG); default: the prompt"},
      {"negative_prompt_2", "--negative-prompt-2", "", "", "SDXL: negative prompt for the second text encoder; default: the negative prompt"},
      {"original_size", "--original-size", "", "", "SDXL micro-conditioning: the original image size WxH (default: the output size)"},
      {"target_size", "--target-size", "", "", "SDXL micro-conditioning: the target size WxH (default: the output size)"},
      {"crop_coords", "--crop-coords", "", "", "SDXL micro-conditioning: crop top-left X,Y (default 0,0)"},
      {"negative_original_size", "--negative-original-size", "", "", "SDXL: original size WxH for the negative pass (with --negative-target-size)"},
      {"negative_target_size", "--negative-target-size", "", "", "SDXL: target size WxH for the negative pass (with --negative-original-size)"},
      {"negative_crop_coords", "--negative-crop-coords", "", "", "SDXL: crop top-left X,Y for the negative pass (default 0,0)"},
      {"aesthetic_score", "--aesthetic-score", "", "Aesthetic score", "SDXL refiner: aesthetic score conditioning"},
      {"negative_aesthetic_score", "--negative-aesthetic-score", "", "Negative aesthetic score", "SDXL refiner: aesthetic score of the negative pass"},
      {"refiner", "--refiner", "", "Refiner", "SDXL refiner model (folder or file) that finishes the base model's denoising"},
      {"refiner_switch", "--refiner-switch", "", "Refiner switch at", "fraction of the schedule the base model runs before the refiner takes over (diffusers' denoising_end)"},
      {"vae", "--vae", "", "VAE", "replacement VAE (diffusers folder or .safetensors, e.g. SDXL's fp16-fix) or a TAESD folder to decode with"},
      {"preview", "--preview", "", "", "live previews: auto (taesd when a TAESD folder is given, else latent2rgb), latent2rgb, taesd, none"},
      {"preview_vae", "--preview-vae", "", "", "TAESD folder (madebyollin/taesd or taesdxl) for --preview taesd"},
      {"preview_every", "--preview-every", "", "", "draw a preview every N steps (0 = none)"},
      {"guidance", "--guidance", "", "Guidance", "FLUX-dev distilled guidance (diffusers' guidance_scale of FluxPipeline; -1 = the model's default: 3.5 dev); ignored with a warning by models without a guidance embedding"},
      {"max_sequence_length", "--max-sequence-length", "", "", "text tokens: T5 for FLUX/SD3 (0 = the model's default: 512 FLUX-dev, 256 FLUX-schnell and SD3; at most 512), Qwen3 for Z-Image (512, at most 1024), Qwen2.5-VL for Qwen-Image (512, at most 1024)"},
      {"prompt_3", "--prompt-3", "", "", "SD3: prompt for the T5 encoder (default: the prompt)"},
      {"negative_prompt_3", "--negative-prompt-3", "", "", "SD3: negative prompt for the T5 encoder (default: the negative prompt)"},
      {"skip_layers", "--skip-layers", "", "Skip layers", "SD3.5 skip-layer guidance: transformer blocks to skip, e.g. 7,8,9 (diffusers' skip_guidance_layers; empty = off)"},
      {"skip_layer_scale", "--skip-layer-scale", "", "Skip layer scale", "SD3.5 skip-layer guidance scale (diffusers' skip_layer_guidance_scale)"},
      {"skip_layer_start", "--skip-layer-start", "", "Skip layer start", "fraction of the steps where skip-layer guidance starts"},
      {"skip_layer_stop", "--skip-layer-stop", "", "Skip layer stop", "fraction of the steps where skip-layer guidance stops"},
      {"frames", "--frames", "", "Frames", "video models: number of frames, 4k+1 for Wan (0 = the model's default: 121 Wan 2.2 TI2V-5B); others are snapped down to 4k+1 with a warning"},
      {"fps", "--fps", "", "FPS", "video models: frames per second written into the video (0 = the model's default: 24 Wan 2.2)"},
      {"strict", "--strict", "", "", "refuse values the model would round (e.g. --frames not 4k+1) instead of snapping them with a warning"},
      {"prompt_syntax", "--prompt-syntax", "", "", "diffusers (plain text, 77 tokens, seeds match diffusers) or a1111 ((word:1.2), (word), [word], BREAK, prompts over 77 tokens)"},
  };
  return kFields;
}

namespace {
Status bad(const std::string& msg) { return Error{ErrorCode::kInvalidArgument, msg}; }
}  // namespace

bool parse_pair(const std::string& s, char sep, std::pair<int, int>* out) {
  const size_t k = s.find(sep == 'x' ? "x" : ",");
  if (k == std::string::npos || k == 0 || k + 1 >= s.size()) return false;
  int v[2];
  const std::string parts[2] = {s.substr(0, k), s.substr(k + 1)};
  for (int i = 0; i < 2; ++i) {
    if (parts[i].size() > 6 || parts[i].find_first_not_of("0123456789") != std::string::npos) return false;
    v[i] = std::stoi(parts[i]);
  }
  if (sep == 'x' && (v[0] <= 0 || v[1] <= 0)) return false;
  if (out) *out = {v[0], v[1]};
  return true;
}

Status validate_params(const GenerateParams& p) {
  static const char* kTasks[] = {"auto", "text_to_image", "image_to_image", "inpaint", "text_to_video", "image_to_video", "upscale"};
  if (std::find(std::begin(kTasks), std::end(kTasks), p.task) == std::end(kTasks))
    return bad("task '" + p.task + "' is unknown; use text_to_image, image_to_image, inpaint, text_to_video, image_to_video or upscale");
  if (p.task == "upscale")
    return Error{ErrorCode::kCapabilityNotSupported, "task upscale is not supported by any engine in this build yet"};
  if (p.task == "image_to_video" && p.init_image.empty()) return bad("task image_to_video needs the first frame (--init-image)");
  if (p.frames < 0 || p.frames > 1025) return bad("frames must be between 1 and 1025 (0 = the model's default)");
  if (!std::isfinite(p.fps) || p.fps < 0 || p.fps > 240) return bad("fps must be between 0 (the model's default) and 240");
  if (p.task == "text_to_image" && !p.init_image.empty()) return bad("task text_to_image takes no init image; use image_to_image");
  if ((p.task == "image_to_image" || p.task == "inpaint") && p.init_image.empty())
    return bad("task " + p.task + " needs an init image (--init-image)");
  if (p.task == "inpaint" && p.mask.empty()) return bad("task inpaint needs a mask (--mask)");
  if (p.steps < 1 || p.steps > 1000)
    return bad("steps must be between 1 and 1000 (got " + std::to_string(p.steps) + ")");
  if (!std::isfinite(p.cfg_scale) || p.cfg_scale < 0 || p.cfg_scale > 100)
    return bad("cfg_scale must be between 0 and 100");
  for (auto [name, v] : {std::pair{"width", p.width}, std::pair{"height", p.height}}) {
    if (v < 0) return bad(std::string(name) + " must be positive (got " + std::to_string(v) + ")");
    if (v > 4096)
      return bad(std::string(name) + " " + std::to_string(v) +
                 " is above the 4096-pixel limit; generate smaller and upscale instead");
  }
  if (p.clip_skip < 1 || p.clip_skip > 12)
    return bad("clip_skip must be between 1 (last layer) and 12");
  if (p.batch_size < 1 || p.batch_size > 16) return bad("batch_size must be between 1 and 16");
  if (p.preview_every < 0 || p.preview_every > 1000) return bad("preview_every must be between 0 (off) and 1000");
  if (!std::isfinite(p.eta) || (p.eta < 0 && p.eta != -1.0f) || p.eta > 10)
    return bad("eta must be -1 (sampler default) or between 0 and 10");
  if (!std::isfinite(p.s_noise) || p.s_noise < 0 || p.s_noise > 10) return bad("s_noise must be between 0 and 10");
  if (!std::isfinite(p.s_churn) || p.s_churn < 0 || p.s_churn > 100) return bad("s_churn must be between 0 and 100");
  if (p.rng != "cpu" && p.rng != "philox" && p.rng != "gpu" && p.rng != "nv")
    return bad("rng must be 'cpu' (torch CPU generator) or 'philox' (A1111 GPU seeds), got '" + p.rng + "'");
  if (!std::isfinite(p.strength) || p.strength <= 0 || p.strength > 1)
    return bad("strength must be in (0, 1] (got " + std::to_string(p.strength) + "); 1 repaints completely");
  if (!p.mask.empty() && p.init_image.empty()) return bad("a mask needs an init image (--init-image)");
  if (!std::isfinite(p.mask_blur) || p.mask_blur < 0 || p.mask_blur > 256) return bad("mask_blur must be between 0 and 256 pixels");
  if (p.inpaint_full_res_padding < 0 || p.inpaint_full_res_padding > 4096)
    return bad("inpaint_full_res_padding must be between 0 and 4096 pixels");
  if (p.resize_mode != "just_resize" && p.resize_mode != "crop_and_resize" && p.resize_mode != "resize_and_fill" &&
      p.resize_mode != "none")
    return bad("resize_mode must be just_resize, crop_and_resize, resize_and_fill or none (got '" + p.resize_mode + "')");
  if (p.paste_back != "auto" && p.paste_back != "on" && p.paste_back != "off")
    return bad("paste_back must be auto, on or off");
  if (p.vae_tiling != "auto" && p.vae_tiling != "on" && p.vae_tiling != "off")
    return bad("vae_tiling must be auto, on or off (got '" + p.vae_tiling + "')");
  for (const std::string* sz : {&p.original_size, &p.target_size, &p.negative_original_size, &p.negative_target_size})
    if (!sz->empty() && !parse_pair(*sz, 'x', nullptr))
      return bad("sizes are given as WxH with positive integers, e.g. 1024x1024 (got '" + *sz + "')");
  for (const std::string* cc : {&p.crop_coords, &p.negative_crop_coords})
    if (!cc->empty() && !parse_pair(*cc, ',', nullptr))
      return bad("crop coordinates are given as X,Y with non-negative integers, e.g. 0,0 (got '" + *cc + "')");
  if (!std::isfinite(p.aesthetic_score) || !std::isfinite(p.negative_aesthetic_score) || p.aesthetic_score < 0 ||
      p.aesthetic_score > 10 || p.negative_aesthetic_score < 0 || p.negative_aesthetic_score > 10)
    return bad("aesthetic scores must be between 0 and 10");
  if (p.preview != "auto" && p.preview != "latent2rgb" && p.preview != "taesd" && p.preview != "none")
    return bad("preview must be auto, latent2rgb, taesd or none (got '" + p.preview + "')");
  if (p.prompt_syntax != "diffusers" && p.prompt_syntax != "a1111")
    return bad("prompt_syntax must be diffusers or a1111 (got '" + p.prompt_syntax + "')");
  if (!std::isfinite(p.refiner_switch) || p.refiner_switch <= 0 || p.refiner_switch > 1)
    return bad("refiner_switch must be in (0, 1] (the fraction of the schedule the base model runs)");
  if (!std::isfinite(p.guidance) || (p.guidance < 0 && p.guidance != -1.0f) || p.guidance > 100)
    return bad("guidance must be -1 (the model's default) or between 0 and 100");
  if (p.max_sequence_length < 0 || p.max_sequence_length > 1024)
    return bad("max_sequence_length must be between 1 and 1024 text tokens (0 = the model's default)");
  for (char ch : p.skip_layers)
    if (!std::isdigit(static_cast<unsigned char>(ch)) && ch != ',' && ch != ' ')
      return bad("skip_layers is a comma-separated list of block indices, e.g. 7,8,9 (got '" + p.skip_layers + "')");
  if (!std::isfinite(p.skip_layer_scale) || p.skip_layer_scale < 0 || p.skip_layer_scale > 100)
    return bad("skip_layer_scale must be between 0 and 100");
  if (!std::isfinite(p.skip_layer_start) || !std::isfinite(p.skip_layer_stop) || p.skip_layer_start < 0 ||
      p.skip_layer_stop > 1 || p.skip_layer_start > p.skip_layer_stop)
    return bad("skip_layer_start and skip_layer_stop are fractions of the steps with 0 <= start <= stop <= 1");
  for (const std::string* path : {&p.init_image, &p.mask})
    if (path->find('\0') != std::string::npos) return bad("image paths must not contain NUL bytes");
  if (p.seed < -1) return bad("seed must be -1 (random) or a non-negative integer");
  if (p.prompt.size() > 100000) return bad("prompt is longer than 100000 bytes");
  return Status();
}

std::string format_infotext(const GenerateParams& p, uint64_t seed, int width, int height,
                            const std::string& model_name, const std::string& model_hash) {
  std::ostringstream os;
  os << p.prompt << "\n";
  if (!p.negative_prompt.empty()) os << "Negative prompt: " << p.negative_prompt << "\n";
  const auto q = infotext_quote;  // values with , : or newlines go in quotes, as A1111 writes them
  os << "Steps: " << p.steps << ", Sampler: " << q(p.sampler);
  if (!p.scheduler.empty() && p.scheduler != "default") os << ", Schedule type: " << q(p.scheduler);
  os << ", CFG scale: " << p.cfg_scale
     << ", Seed: " << seed << ", Size: " << width << "x" << height;
  if (!model_hash.empty()) os << ", Model hash: " << q(model_hash);
  if (!model_name.empty()) os << ", Model: " << q(model_name);
  if (p.clip_skip > 1) os << ", Clip skip: " << p.clip_skip;
  if (p.eta >= 0) os << ", Eta: " << p.eta;
  if (p.s_noise != 1.0f) os << ", s_noise: " << p.s_noise;
  if (p.s_churn != 0.0f) os << ", s_churn: " << p.s_churn;
  if (!p.init_image.empty()) os << ", Denoising strength: " << p.strength;
  if (!p.mask.empty()) {
    os << ", Mask blur: " << p.mask_blur;
    if (p.invert_mask) os << ", Mask mode: Inpaint not masked";
    if (p.inpaint_full_res) os << ", Inpaint area: Only masked, Masked area padding: " << p.inpaint_full_res_padding;
  }
  if (p.guidance >= 0) os << ", Guidance: " << p.guidance;
  if (p.frames > 0) os << ", Frames: " << p.frames;
  if (p.fps > 0) os << ", FPS: " << p.fps;
  if (!p.skip_layers.empty()) os << ", Skip layers: " << q(p.skip_layers) << ", Skip layer scale: " << p.skip_layer_scale;
  if (!p.init_image.empty() && p.resize_mode != "just_resize") os << ", Resize mode: " << q(p.resize_mode);
  if (p.rng == "philox" || p.rng == "gpu" || p.rng == "nv") os << ", RNG: NV";
  if (!p.refiner.empty()) os << ", Refiner: " << q(p.refiner) << ", Refiner switch at: " << p.refiner_switch;
  if (!p.vae.empty()) os << ", VAE: " << q(p.vae.substr(p.vae.find_last_of('/') + 1));
  os << ", Version: visiongen";
  return os.str();
}

}  // namespace vg
