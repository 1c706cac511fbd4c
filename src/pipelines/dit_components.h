// Components of the diffusion-transformer families as users hold them: a
// diffusers component folder, or a single file (ComfyUI's clip_l /
// clip_g / t5xxl files, BFL's ae.safetensors, SD3 single files with their
// encoders inside under a prefix). Configs come from the folder, else from
// a --config folder, else from the tensor shapes.
#pragma once
#include <memory>
#include <string>

#include "io/weights.h"
#include "models/autoencoder_kl.h"
#include "models/wan_vae.h"
#include "text/clip_text_model.h"
#include "text/clip_tokenizer.h"
#include "text/t5_encoder.h"
#include "text/t5_tokenizer.h"

namespace vg {

// Where one component comes from: `path` is a folder with config.json or a
// tensor file; `prefix` selects its tensors inside a file holding more.
struct ComponentRef {
  std::string path, prefix;
  std::string config_dir;  // a diffusers component folder whose config.json describes it ("" = infer)
  bool empty() const { return path.empty(); }
};

// The tensors of a component (folder or file; the prefix stripped).
WeightStore open_component(const ComponentRef& c, const char* what);
// A CLIP text encoder (lazy; CLIP-L quick_gelu, OpenCLIP-G gelu when inferred).
std::unique_ptr<ClipTextModel> load_clip_component(const ComponentRef& c, bool bf16, const char* what);
std::unique_ptr<T5Encoder> load_t5_component(const ComponentRef& c, bool bf16, const char* what);
// A VAE from diffusers names (folder or file) or LDM/BFL names (file);
// `defaults` gives scaling/shift/groups the weights cannot tell.
std::unique_ptr<AutoencoderKL> load_vae_component(const ComponentRef& c, bool bf16, const VaeConfig& defaults);

// The Wan 2.1-style VAE (Qwen-Image; Wan 2.1): a diffusers vae folder, or a
// file in diffusers' or the original Wan names (wan_2.1_vae.safetensors,
// qwen_image_vae.safetensors); config from the folder / c.config_dir, else the shapes.
std::unique_ptr<WanVae> load_wan_vae_component(const ComponentRef& c, bool bf16);

// A component given by the user (LoadOptions); else, for a model folder,
// its `sub` folder; for a single file, a file beside it whose name starts
// with one of `patterns` (ComfyUI's "clip_l", "t5xxl", ...), else the
// --config folder's `sub` — "" when none.
std::string find_component(const std::string& given, const std::string& config_dir, const char* sub,
                           const std::string& model_path, std::initializer_list<const char*> patterns);

// "flux" (a FluxPipeline folder or a file with BFL transformer names), "sd3"
// (StableDiffusion3Pipeline folder or MMDiT file), "zimage" (ZImagePipeline
// folder or Z-Image transformer file), "qwenimage" (QwenImagePipeline folder or
// Qwen-Image transformer file), "wan" (WanPipeline folder or Wan transformer
// file), or "" — one read of the file's header.
std::string dit_family_of(const std::string& path);

// After a transformer was built from `w` (with track_used() on): unsupported_model
// when the file holds tensors it never read (another variant, or a file with
// extra parts), naming the first; `ignored` names are dropped silently (as diffusers does).
void refuse_unknown_tensors(const WeightStore& w, const std::string& file, const std::string& family,
                            std::initializer_list<const char*> ignored = {});

// Small shared helpers of the DiT loaders.
bool is_folder(const std::string& path);
const std::string& first_given(const std::string& a, const std::string& b);  // a unless empty
// `<dir>/config.json` of the first of `dirs` that has one ("" when none; empty dirs skipped).
std::string first_config(std::initializer_list<std::string> dirs);
// model_index.json's _class_name of a diffusers folder ("" when none).
std::string pipeline_class(const std::string& dir);
// The 16-channel VAE settings a single file cannot tell (groups 32, the family's scale and shift).
VaeConfig dit_vae_defaults(float scaling_factor, float shift_factor);

// CLIP BPE tokenizer from a folder (vocab.json + merges.txt), else the built-in one.
std::unique_ptr<ClipTokenizer> load_clip_tokenizer(const std::string& dir, const std::string& pad_token);
// T5 tokenizer folder (spiece.model or tokenizer.json) among the candidates,
// else missing_component naming what to pass.
std::unique_ptr<T5Tokenizer> load_t5_tokenizer(std::initializer_list<std::string> candidates, const std::string& family);

}  // namespace vg
