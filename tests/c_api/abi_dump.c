/* Prints the C API's binary layout: struct sizes and member offsets, enum
 * values. tests/c_api/abi_check.sh compares it (with the exported symbols
 * and the preprocessed header) to the committed snapshot abi.txt. */
#include <stddef.h>
#include <stdio.h>

#include "visiongen/visiongen_c.h"

#define SIZE(T) printf("sizeof %s %zu\n", #T, sizeof(T))
#define OFF(T, m) printf("offsetof %s.%s %zu\n", #T, #m, offsetof(T, m))

int main(void) {
  printf("VG_ABI_VERSION %d\n", VG_ABI_VERSION);
  SIZE(vg_image), OFF(vg_image, width), OFF(vg_image, height), OFF(vg_image, channels), OFF(vg_image, pixels);
  SIZE(vg_context_params), OFF(vg_context_params, threads), OFF(vg_context_params, data_dir);
  SIZE(vg_load_options), OFF(vg_load_options, precision), OFF(vg_load_options, lora_mode),
      OFF(vg_load_options, quant_compute), OFF(vg_load_options, tokenizer_dir), OFF(vg_load_options, config_dir),
      OFF(vg_load_options, vae), OFF(vg_load_options, unet), OFF(vg_load_options, transformer),
      OFF(vg_load_options, keep_text_encoder);
  SIZE(vg_params), OFF(vg_params, task), OFF(vg_params, prompt), OFF(vg_params, negative_prompt),
      OFF(vg_params, width), OFF(vg_params, height), OFF(vg_params, steps), OFF(vg_params, cfg_scale),
      OFF(vg_params, seed), OFF(vg_params, sampler), OFF(vg_params, scheduler), OFF(vg_params, batch_size),
      OFF(vg_params, strength), OFF(vg_params, init_image), OFF(vg_params, mask), OFF(vg_params, guidance),
      OFF(vg_params, frames), OFF(vg_params, fps), OFF(vg_params, preview_every), OFF(vg_params, loras),
      OFF(vg_params, extra_json);
  SIZE(vg_progress), OFF(vg_progress, stage), OFF(vg_progress, step), OFF(vg_progress, total),
      OFF(vg_progress, stage_elapsed_s);
  SIZE(vg_callbacks), OFF(vg_callbacks, progress), OFF(vg_callbacks, preview), OFF(vg_callbacks, abort),
      OFF(vg_callbacks, user);
  for (int s = VG_OK; s <= VG_QUEUE_UNAVAILABLE; ++s) printf("status %d %s\n", s, vg_status_name((vg_status)s));
  return 0;
}
