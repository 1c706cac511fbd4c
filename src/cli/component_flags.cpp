#include "cli/component_flags.h"

namespace vg::cli {

void add_component_flags(CLI::App* cmd, LoadOptions* lo, bool with_vae) {
  cmd->add_option("--transformer", lo->transformer_file,
                  "FLUX/SD3: the transformer from this file (BFL/Stability .safetensors, city96 GGUF) or "
                  "diffusers transformer/ folder");
  cmd->add_option("--text-encoder", lo->text_encoder,
                  "FLUX/SD3: the first text encoder (CLIP-L): a file or a diffusers component folder");
  cmd->add_option("--text-encoder-2", lo->text_encoder_2,
                  "FLUX: the T5 encoder; SD3: CLIP-G (file or folder)");
  cmd->add_option("--text-encoder-3", lo->text_encoder_3, "SD3: the T5 encoder (file or folder)");
  cmd->add_option("--clip-l", lo->clip_l,
                  "CLIP-L text encoder file (ComfyUI's clip_l.safetensors); = --text-encoder");
  cmd->add_option("--clip-g", lo->clip_g,
                  "SD3: CLIP-G text encoder file (clip_g.safetensors); = --text-encoder-2");
  cmd->add_option(
      "--t5", lo->t5,
      "T5-XXL encoder file (t5xxl_fp16.safetensors); FLUX --text-encoder-2, SD3 --text-encoder-3");
  cmd->add_flag("--no-t5", lo->no_t5,
                "SD3: load no T5 encoder (its prompt part is zeros, as diffusers without text_encoder_3): "
                "saves its memory");
  cmd->add_option("--model-config,--config", lo->config_dir,
                  "a diffusers folder of the same architecture whose configs and tokenizers describe a "
                  "single-file checkpoint (diffusers' from_single_file config=)");
  if (with_vae)
    cmd->add_option("--vae", lo->vae_file,
                    "FLUX/SD3: the VAE (BFL ae.safetensors, a diffusers vae/ folder, an SD3 VAE file)");
}

}  // namespace vg::cli
