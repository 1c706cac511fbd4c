// visiongen public API: load a model once, generate many images.
//
//   auto engine = vg::Engine::load("path/to/model");          // Result<...>
//   vg::GenerateParams p; p.prompt = "a red fox"; p.seed = 42;
//   auto out = (*engine)->generate(p, on_progress);          // Result<...>
//   vg::save_image(out->images[0], "fox.png", out->infotext[0]);
//
// No exception escapes this API; every failure is a vg::Error with a stable
// code (docs/errors.md).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "visiongen/error.h"
#include "visiongen/params.h"

namespace vg {

struct Image {
  int width = 0, height = 0, channels = 3;
  std::vector<uint8_t> pixels;  // row-major RGB8
};

// A generated clip: RGB8 frames of one size, shown at `fps`.
struct Video {
  int width = 0, height = 0;
  double fps = 24;
  std::vector<Image> frames;
};

struct StageTimings {
  double load_s = 0, text_encode_s = 0, denoise_s = 0, decode_s = 0;
  // Peak resident memory of the process during each phase, MB (each phase
  // starts a new peak where Linux allows; else the peak so far).
  double load_peak_rss_mb = 0, text_encode_peak_rss_mb = 0, denoise_peak_rss_mb = 0, decode_peak_rss_mb = 0;
};

// How the request's names were understood (A1111/ComfyUI/diffusers names
// resolve to one canonical sampler and schedule).
struct SamplingInfo {
  std::string sampler_in, sampler_effective;
  std::string scheduler_in, scheduler_effective;
  std::string rng;  // "cpu" | "philox"
};

struct GenerateResult {
  std::vector<Image> images;
  std::vector<Video> videos;           // video models (Wan): one clip per batch item, instead of images
  std::vector<uint64_t> seeds;         // seed used for each image (seed, seed+1, ... for batches)
  SamplingInfo sampling;
  std::vector<std::string> warnings;   // options that were not applied, and why
  std::string applied_preset_patch;    // JSON object of the fields a preset filled ("{}" = none)
  std::string mode_ignored_reason;     // why the requested mode had no preset ("" = applied)
  std::vector<std::string> infotext;   // A1111 "parameters" text per image
  StageTimings timings;
};

struct Progress {
  const char* stage = "";  // "text_encode" | "denoise" | "decode"
  int step = 0, total = 0;
  double stage_elapsed_s = 0;
  // Denoise steps only, every GenerateParams::preview_every steps: a cheap
  // approximate picture of the current latents (null otherwise).
  const Image* preview = nullptr;
};
// Return false to cancel; generate() then fails with ErrorCode::kCancelled.
using ProgressCallback = std::function<bool(const Progress&)>;

struct LoadOptions {
  int threads = 0;  // 0 = all cores
  // CLIP tokenizer folder (vocab.json + merges.txt) for single-file
  // checkpoints; "" = look beside the file and in the Hugging Face cache.
  std::string tokenizer_dir;
  // Compute precision: "fp32" (faithful to diffusers' float32 results),
  // "bf16" (bf16 weights and GEMM inputs, float32 accumulation; about 1.75x
  // faster on CPUs with AVX512_BF16, images ~40 dB PSNR from fp32), or
  // "auto" = $VG_PRECISION when set; else fp32 for small models (under 500
  // MB of weights: nothing to gain, so they keep exact parity); else the
  // faster of fp32 and bf16 on this CPU for the model's architecture, timed
  // once on its layer shapes and cached in $XDG_CACHE_HOME/visiongen/
  // precision.json (never decided by CPU flags alone).
  std::string precision = "auto";
  // The text encoder's weights are converted when a prompt is encoded and
  // dropped afterwards (recent prompts' embeddings are cached), so they do
  // not sit in memory through denoising and decoding. true keeps them
  // (saves ~0.1-0.3 s per new prompt with full-size models).
  bool keep_text_encoder = false;
  // A diffusers folder of the same architecture whose config.json files and
  // tokenizers describe a single-file checkpoint (diffusers'
  // from_single_file(config=...)); "" = infer from the tensor shapes.
  std::string config_dir;
  // Folders searched for LoRA names (--lora / <lora:name:w>) that are not
  // paths, before $VG_LORA_DIR (':'-separated).
  std::vector<std::string> lora_dirs;
  // LoRA names only inside lora_dirs: no paths of their own, no "..", no
  // symlink out of a folder (what the server sets for its clients).
  bool lora_confined = false;
  // How LoRAs reach the layers: "merge" (added into the weights, unmerged
  // bit-exactly when removed: no per-step cost) or "runtime" (the weights stay
  // as loaded and each layer adds its low-rank update to its output: no
  // rewrite of the weights, a small per-step cost). Layers whose weights
  // cannot be rewritten (quantised) always apply at run time.
  std::string lora_mode = "merge";
  // A denoiser-only file (GGUF or .safetensors) whose UNet replaces the
  // model's (same architecture): stable-diffusion.cpp / city96 UNet GGUFs
  // ("model.diffusion_model." prefix or none) or diffusers UNet weights.
  std::string unet_file;
  // Linear layers whose GGUF weights are block-quantised (Q8_0, Q4_K...):
  // "native" computes straight from the blocks (int8 dot products or
  // dequantised tiles, whichever is faster here; activations quantised to
  // int8 per 32 values, so results move by ~1-5% vs float32, like ggml's);
  // "dequant" dequantises them exactly to float32 at load (diffusers parity,
  // 4-8x the memory of the blocks).
  std::string quant_compute = "native";
  // Diffusion-transformer components (FLUX, SD3), each a file (safetensors
  // or GGUF) or a diffusers component folder, supplying or replacing what
  // the model (-m: a diffusers folder or a single file) has. By diffusers
  // slot: FLUX text_encoder = CLIP-L, text_encoder_2 = T5; SD3 text_encoder
  // = CLIP-L, text_encoder_2 = CLIP-G, text_encoder_3 = T5.
  std::string transformer_file, text_encoder, text_encoder_2, text_encoder_3;
  // The same by role, as ComfyUI users keep them (clip_l.safetensors, ...).
  std::string clip_l, clip_g, t5;
  std::string vae_file;  // the VAE (BFL ae.safetensors, a diffusers vae/ folder, an SD3 VAE file)
  // SD3: load no T5; its part of the prompt is zeros, as diffusers without text_encoder_3.
  bool no_t5 = false;
};

// "fp32" or "bf16" for a LoadOptions::precision value and the model's
// weight bytes (< 0 = unknown, treated as full-size); "" for an unknown value.
// `arch` ("sd", "sdxl") selects the measured choice for full-size models.
std::string resolve_precision(const std::string& precision, double model_bytes = -1, const std::string& arch = "sd");

struct ModelInfo {
  std::string name;        // folder or file stem
  std::string family;      // "sd1", "sd2", "sdxl", "flux", "sd3"
  std::string path;
  std::string prediction_type;
  int default_width = 512, default_height = 512;
  int size_multiple = 8;   // width/height must be multiples of this
  int vae_scale = 8;
  bool video = false;      // a video model (Wan): results come as GenerateResult::videos
  int default_frames = 0;  // video models: frames made when none are asked for
  std::string precision = "fp32";  // effective compute precision
  // How it was chosen: "requested", "env" ($VG_PRECISION), "small model",
  // "measured" (this load timed fp32 vs bf16) or "cached measurement".
  std::string precision_source = "requested";
};

// Decoded images for image-to-image / inpainting, instead of the paths in
// GenerateParams::init_image / mask (e.g. images received over HTTP).
struct ImageInputs {
  const Image* init_image = nullptr;  // RGB8 or RGBA8
  const Image* mask = nullptr;        // white = repaint; with transparency: transparent = repaint
};

class Engine {
 public:
  // path: a diffusers folder (model_index.json) or a single .safetensors
  // checkpoint in the original CompVis/LDM layout.
  static Result<std::unique_ptr<Engine>> load(const std::string& path, const LoadOptions& opts = {});
  ~Engine();

  Result<GenerateResult> generate(const GenerateParams& params, const ProgressCallback& cb = nullptr);
  Result<GenerateResult> generate(const GenerateParams& params, const ImageInputs& images,
                                  const ProgressCallback& cb = nullptr);
  const ModelInfo& info() const;
  // The family name presets use (data/presets/*.yaml): "stable-diffusion-1-x",
  // "stable-diffusion-2-x", "sdxl", "flux-dev" (distilled guidance),
  // "flux-schnell", "sd3".
  std::string preset_family() const;
  // Checks params against this model (sizes, steps, ...) without running.
  Status validate(const GenerateParams& params) const;
  Status validate_with(const GenerateParams& params, const ImageInputs& images) const;

  struct Impl;

 private:
  explicit Engine(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Writes PNG (with the A1111 "parameters" tEXt chunk), JPEG or WebP, chosen
// by the extension. Atomic: on failure no partial file is left.
Status save_image(const Image& image, const std::string& path, const std::string& infotext = "");
// A clip by the path's extension: .mp4 (H.264, yuv420p), .webm (VP9), .webp
// (animated), .gif; `infotext` goes into the container's comment. Written
// atomically: nothing is left at `path` when it fails.
Status save_video(const Video& video, const std::string& path, const std::string& infotext = "");
// Every frame as DIR/frame_0000.png, ... (each with `infotext`).
Status save_video_frames(const Video& video, const std::string& dir, const std::string& infotext = "");

// Sets the thread count used by every kernel (0 = all cores).
void set_threads(int threads);

const char* version();

}  // namespace vg
