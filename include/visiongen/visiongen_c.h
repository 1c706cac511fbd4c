/* visiongen C API (C11): load a model once, run text-to-image, image-to-image,
 * inpainting and video generation, with progress, preview and abort callbacks.
 *
 *   vg_context* ctx; vg_model* model; vg_result* res;
 *   vg_context_create(NULL, &ctx);
 *   vg_model_load(ctx, NULL, NULL, &model);           // NULL path = the demo model
 *   vg_params p; vg_params_init(&p);
 *   p.prompt = "a red star on a white background"; p.seed = 42;
 *   if (vg_generate(model, &p, NULL, &res) != VG_OK) fprintf(stderr, "%s\n", vg_last_error());
 *   vg_image img; vg_result_image(res, 0, &img);
 *   vg_image_save(&img, "star.png", vg_result_infotext(res, 0));
 *   vg_result_free(res); vg_model_free(model); vg_context_free(ctx);
 *
 * Rules (docs/embedding.md has the whole contract):
 * - Every call that can fail returns a vg_status; VG_OK is 0 and the other
 *   values equal vg::ErrorCode (docs/errors.md). vg_last_error() gives the
 *   message of the last failing call on the calling thread.
 * - No C++ exception crosses this API. Strings passed in are UTF-8 and are
 *   copied before the call returns; strings and buffers handed out belong to
 *   their handle and live until it is freed.
 * - Thread safety: handles may be used from any thread. One model runs one
 *   generation at a time (a second call waits); different models run in
 *   parallel. Callbacks run on the thread doing the work.
 * - Structs that the caller fills start with `struct_size`, set by the init
 *   functions (inline: they pass the caller's sizeof to the library, which
 *   writes no further): new fields are only ever appended, so a program built
 *   against an older header keeps working with a newer library (ABI policy:
 *   VG_ABI_VERSION changes, and the SONAME with it, only when that breaks). */
#ifndef VISIONGEN_C_H
#define VISIONGEN_C_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VG_ABI_VERSION 1

#if defined(__GNUC__)
#define VG_API __attribute__((visibility("default")))
#else
#define VG_API
#endif

/* Equal to vg::ErrorCode; vg_status_name() gives the stable name ("invalid_argument"). */
typedef enum vg_status {
  VG_OK = 0,
  VG_INVALID_ARGUMENT = 1,
  VG_FILE_NOT_FOUND = 2,
  VG_CORRUPT_FILE = 3,
  VG_UNSUPPORTED_FORMAT = 4,
  VG_UNSUPPORTED_MODEL = 5,
  VG_MISSING_COMPONENT = 6,
  VG_SHAPE_MISMATCH = 7,
  VG_OUT_OF_MEMORY = 8,
  VG_IO_ERROR = 9,
  VG_CANCELLED = 10,
  VG_INTERNAL = 11,
  VG_BUSY = 12,
  VG_UNAUTHORIZED = 13,
  VG_CAPABILITY_NOT_SUPPORTED = 14,
  VG_UNKNOWN_MODEL = 15,
  VG_MODEL_NOT_AVAILABLE_OFFLINE = 16,
  VG_LORA_UNSUPPORTED = 17,
  VG_MODEL_NOT_CONVERTED = 18,
  VG_LORA_NOT_FOUND = 19,
  VG_LORA_INCOMPATIBLE = 20,
  VG_DISK_FULL = 21,
  VG_QUEUE_UNAVAILABLE = 22
} vg_status;

typedef struct vg_context vg_context; /* settings shared by the models loaded through it */
typedef struct vg_model vg_model;     /* a loaded model */
typedef struct vg_job vg_job;         /* a generation running in the background */
typedef struct vg_result vg_result;   /* the images or clips of one generation */

/* An RGB8 (channels 3) or RGBA8 (channels 4) picture, rows top to bottom.
 * Pixels handed out by the library belong to their owner (result, job);
 * vg_image_load() allocates pixels that vg_image_release() frees. */
typedef struct vg_image {
  int32_t width, height, channels;
  const uint8_t* pixels;
} vg_image;

/* ---- errors and version ---- */
VG_API const char* vg_status_name(vg_status status);
/* The message of the last failing call on this thread ("" when none). */
VG_API const char* vg_last_error(void);
VG_API const char* vg_version(void);
VG_API int32_t vg_abi_version(void);

/* ---- context ---- */
typedef struct vg_context_params {
  uint32_t struct_size;
  int32_t threads;      /* 0 = all cores */
  const char* data_dir; /* NULL = $VG_DATA_DIR, else <prefix>/share/visiongen found from the library */
} vg_context_params;

VG_API void vg_context_params_init_sized(vg_context_params* params, size_t size);
static inline void vg_context_params_init(vg_context_params* params) {
  vg_context_params_init_sized(params, sizeof *params);
}
VG_API vg_status vg_context_create(const vg_context_params* params, vg_context** out);
VG_API void vg_context_free(vg_context* ctx);
/* The demo model's folder ("" when it is not installed). */
VG_API const char* vg_context_default_model(const vg_context* ctx);

/* ---- models ---- */
typedef struct vg_load_options {
  uint32_t struct_size;
  const char* precision;      /* "auto" (default) | "fp32" | "bf16" */
  const char* lora_mode;      /* "merge" (default) | "runtime" */
  const char* quant_compute;  /* "native" (default) | "dequant" */
  const char* tokenizer_dir;  /* single-file checkpoints: CLIP tokenizer folder; NULL = automatic */
  const char* config_dir;     /* single-file checkpoints: diffusers folder with the configs */
  const char* vae;            /* a VAE file or folder replacing the model's (DiT families) */
  const char* unet;           /* a denoiser-only UNet file (GGUF or safetensors) */
  const char* transformer;    /* a denoiser-only transformer file (FLUX, SD3, ...) */
  int32_t keep_text_encoder;  /* nonzero: keep the text encoder's weights between prompts */
} vg_load_options;

VG_API void vg_load_options_init_sized(vg_load_options* options, size_t size);
static inline void vg_load_options_init(vg_load_options* options) { vg_load_options_init_sized(options, sizeof *options); }
/* path: a diffusers folder, a single .safetensors or .gguf checkpoint; NULL
 * or "" = the demo model. options may be NULL (defaults). */
VG_API vg_status vg_model_load(vg_context* ctx, const char* path, const vg_load_options* options, vg_model** out);
VG_API void vg_model_free(vg_model* model);
/* {"name","family","path","default_width","default_height","size_multiple",
 *  "video","default_frames","precision",...}; owned by the model. */
VG_API const char* vg_model_info_json(const vg_model* model);

/* ---- generation parameters ----
 * The common fields of GenerateParams (include/visiongen/params.h), by the
 * same names as the JSON API; any other field goes in extra_json. NULL
 * strings keep the default. The task follows the inputs when task is NULL
 * or "auto": init_image = image_to_image (video models: image_to_video),
 * init_image + mask = inpaint. */
typedef struct vg_params {
  uint32_t struct_size;
  const char* task; /* text_to_image | image_to_image | inpaint | text_to_video | image_to_video | auto */
  const char* prompt;
  const char* negative_prompt;
  int32_t width, height; /* 0 = the model's native size */
  int32_t steps;
  float cfg_scale;
  int64_t seed;         /* -1 = random */
  const char* sampler;
  const char* scheduler;
  int32_t batch_size;
  float strength;       /* image_to_image / inpaint */
  const vg_image* init_image;
  const vg_image* mask; /* white = repaint */
  float guidance;       /* FLUX distilled guidance; -1 = the model's default */
  int32_t frames;       /* video: 0 = the model's default */
  float fps;            /* video: 0 = the model's default */
  int32_t preview_every; /* previews every N steps (0 = none) */
  const char* loras;    /* "name:weight,..." */
  const char* extra_json; /* a JSON object of any other field by its JSON name, e.g. {"clip_skip":2} */
} vg_params;

/* The defaults (those of the CLI and the HTTP API). */
VG_API void vg_params_init_sized(vg_params* params, size_t size);
static inline void vg_params_init(vg_params* params) { vg_params_init_sized(params, sizeof *params); }
/* Every field as the engine will read it, as a JSON object (the struct and
 * extra_json merged and checked). Free *json_out with vg_string_free(). */
VG_API vg_status vg_params_to_json(const vg_params* params, char** json_out);
VG_API void vg_string_free(char* s);

/* ---- callbacks ---- */
typedef struct vg_progress {
  const char* stage; /* "text_encode" | "denoise" | "decode" */
  int32_t step, total;
  double stage_elapsed_s;
} vg_progress;

/* Return nonzero to cancel: the generation then fails with VG_CANCELLED. */
typedef int (*vg_progress_fn)(const vg_progress* progress, void* user);
/* A cheap picture of the current latents, every params.preview_every steps. */
typedef void (*vg_preview_fn)(const vg_image* preview, int32_t step, int32_t total, void* user);
/* Polled at every step; nonzero cancels (as llama.cpp's abort callback). */
typedef int (*vg_abort_fn)(void* user);

typedef struct vg_callbacks {
  uint32_t struct_size;
  vg_progress_fn progress;
  vg_preview_fn preview;
  vg_abort_fn abort;
  void* user;
} vg_callbacks;

VG_API void vg_callbacks_init_sized(vg_callbacks* callbacks, size_t size);
static inline void vg_callbacks_init(vg_callbacks* callbacks) { vg_callbacks_init_sized(callbacks, sizeof *callbacks); }

/* Checks params against the model (sizes, steps, frames, inputs) without
 * running: VG_OK or the error vg_generate would give before any work. */
VG_API vg_status vg_model_validate(vg_model* model, const vg_params* params);

/* ---- running ---- */
/* Runs to the end on the calling thread. callbacks may be NULL. */
VG_API vg_status vg_generate(vg_model* model, const vg_params* params, const vg_callbacks* callbacks,
                             vg_result** out);
/* Starts the same work on a background thread; the params are copied. */
VG_API vg_status vg_job_start(vg_model* model, const vg_params* params, const vg_callbacks* callbacks,
                              vg_job** out);
/* Asks the job to stop at its next step (it then ends with VG_CANCELLED). */
VG_API void vg_job_cancel(vg_job* job);
/* Nonzero once the job has ended. */
VG_API int vg_job_done(const vg_job* job);
/* Waits for the end; on success *out is the result (the caller frees it). */
VG_API vg_status vg_job_wait(vg_job* job, vg_result** out);
/* Cancels if still running, waits, frees. */
VG_API void vg_job_free(vg_job* job);

/* ---- results ---- */
VG_API size_t vg_result_image_count(const vg_result* result);
VG_API vg_status vg_result_image(const vg_result* result, size_t index, vg_image* out);
VG_API size_t vg_result_video_count(const vg_result* result);
VG_API size_t vg_result_frame_count(const vg_result* result, size_t video);
VG_API vg_status vg_result_frame(const vg_result* result, size_t video, size_t frame, vg_image* out);
VG_API double vg_result_fps(const vg_result* result, size_t video);
/* A1111 "parameters" text and seed of image `index` (of clip `index` for a
 * video model's result, which has clips and no images). */
VG_API const char* vg_result_infotext(const vg_result* result, size_t index);
VG_API uint64_t vg_result_seed(const vg_result* result, size_t index);
/* {"params":{...},"seeds":[...],"infotext":[...],"warnings":[...],"sampling":{...},"timings":{...}} */
VG_API const char* vg_result_metadata_json(const vg_result* result);
VG_API void vg_result_free(vg_result* result);

/* ---- files ---- */
/* PNG (with the infotext chunk), JPEG or WebP by the extension; atomic. */
VG_API vg_status vg_image_save(const vg_image* image, const char* path, const char* infotext);
/* PNG, JPEG or WebP -> RGB8, or RGBA8 when the file has transparency; free
 * the pixels with vg_image_release(). */
VG_API vg_status vg_image_load(const char* path, vg_image* out);
VG_API void vg_image_release(vg_image* image);
/* .mp4, .webm, .webp or .gif by the extension; atomic. */
VG_API vg_status vg_result_save_video(const vg_result* result, size_t video, const char* path);
/* Every frame as DIR/frame_0000.png, ... */
VG_API vg_status vg_result_save_frames(const vg_result* result, size_t video, const char* dir);

#ifdef __cplusplus
}
#endif

#endif /* VISIONGEN_C_H */
