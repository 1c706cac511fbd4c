/* The C API, compiled as C11: every task, callbacks, cancellation, errors.
 * Usage: c_api_test [FIXTURES_DIR] (the video case runs when it is given). */
#define _POSIX_C_SOURCE 200809L
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "visiongen/visiongen_c.h"

static int g_failures = 0;
#define CHECK(cond, ...)                                  \
  do {                                                    \
    if (!(cond)) {                                        \
      ++g_failures;                                       \
      fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
      fprintf(stderr, __VA_ARGS__);                       \
      fprintf(stderr, " [last error: %s]\n", vg_last_error()); \
    }                                                     \
  } while (0)

typedef struct counter {
  int progress, previews, cancel_at;
} counter;

static int on_progress(const vg_progress* p, void* user) {
  counter* c = (counter*)user;
  if (strcmp(p->stage, "denoise") == 0) ++c->progress;
  return c->cancel_at > 0 && c->progress >= c->cancel_at;
}

static void on_preview(const vg_image* im, int32_t step, int32_t total, void* user) {
  counter* c = (counter*)user;
  if (im->width > 0 && im->height > 0 && im->pixels && step <= total) ++c->previews;
}

static int abort_now(void* user) {
  (void)user;
  return 1;
}

static vg_params star_params(void) {
  vg_params p;
  vg_params_init(&p);
  p.prompt = "a red star on a white background";
  p.seed = 42;
  p.steps = 8;
  return p;
}

static void test_errors_and_params(vg_model* model) {
  CHECK(strcmp(vg_status_name(VG_INVALID_ARGUMENT), "invalid_argument") == 0, "status name");
  CHECK(strcmp(vg_status_name(VG_CANCELLED), "cancelled") == 0, "status name");
  CHECK(vg_abi_version() == VG_ABI_VERSION, "abi version");
  vg_result* res = NULL;
  vg_params p = star_params();
  p.width = 65; /* the demo model needs multiples of 8 */
  CHECK(vg_model_validate(model, &p) == VG_INVALID_ARGUMENT, "validate refuses the bad size");
  CHECK(vg_generate(model, &p, NULL, &res) == VG_INVALID_ARGUMENT && res == NULL, "bad size refused");
  CHECK(strlen(vg_last_error()) > 0, "bad size has a message");
  p = star_params();
  CHECK(vg_model_validate(model, &p) == VG_OK, "validate accepts good params");
  p.extra_json = "{\"no_such_field\": 1}";
  CHECK(vg_generate(model, &p, NULL, &res) == VG_INVALID_ARGUMENT, "unknown extra field refused");
  p.extra_json = "{not json";
  CHECK(vg_generate(model, &p, NULL, &res) == VG_INVALID_ARGUMENT, "malformed extra_json refused");
  CHECK(vg_generate(NULL, &p, NULL, &res) == VG_INVALID_ARGUMENT, "null model refused");
  p = star_params();
  p.extra_json = "{\"clip_skip\": 2, \"mode\": \"normal\"}";
  char* json = NULL;
  CHECK(vg_params_to_json(&p, &json) == VG_OK && json, "params to json");
  if (json) {
    CHECK(strstr(json, "\"clip_skip\":2") && strstr(json, "\"seed\":42") && strstr(json, "\"steps\":8"), "%s", json);
    vg_string_free(json);
  }
}

static vg_result* generate_star(vg_model* model) {
  vg_params p = star_params();
  counter c = {0, 0, 0};
  vg_callbacks cb;
  vg_callbacks_init(&cb);
  cb.progress = on_progress;
  cb.preview = on_preview;
  cb.user = &c;
  p.preview_every = 2;
  vg_result* res = NULL;
  CHECK(vg_generate(model, &p, &cb, &res) == VG_OK && res, "txt2img");
  CHECK(c.progress == 8, "8 denoise progress calls, got %d", c.progress);
  CHECK(c.previews == 4, "4 previews, got %d", c.previews);
  return res;
}

/* The same seed through a background job gives the same pixels; an older
 * caller's shorter vg_params (without fields from `guidance` on) still works. */
static void test_job_and_versioned_struct(vg_model* model, const vg_image* ref) {
  /* An "old" caller's struct ends before `guidance`: the library writes no
   * further and reads no further (the garbage after it is never seen). */
  const size_t old_size = offsetof(vg_params, guidance);
  _Alignas(vg_params) unsigned char buf[sizeof(vg_params) + 16];
  memset(buf, 0x7f, sizeof buf);
  vg_params_init_sized((vg_params*)buf, old_size);
  int untouched = 1;
  for (size_t i = old_size; i < sizeof buf; ++i) untouched &= buf[i] == 0x7f;
  CHECK(untouched, "vg_params_init_sized wrote past the caller's size");
  vg_params* p = (vg_params*)buf;
  CHECK(p->struct_size == old_size && p->steps == 20, "old-size defaults");
  p->prompt = "a red star on a white background";
  p->seed = 42;
  p->steps = 8;
  vg_job* job = NULL;
  CHECK(vg_job_start(model, p, NULL, &job) == VG_OK && job, "job start");
  vg_result* res = NULL;
  CHECK(vg_job_wait(job, &res) == VG_OK && res, "job wait");
  CHECK(vg_job_done(job), "job done");
  vg_image im;
  if (res && vg_result_image(res, 0, &im) == VG_OK)
    CHECK(im.width == ref->width && memcmp(im.pixels, ref->pixels, (size_t)ref->width * ref->height * 3) == 0,
          "same seed, same pixels");
  vg_result_free(res);
  vg_job_free(job);
}

static void test_cancel(vg_model* model) {
  /* A second job cancelled from its own progress callback. */
  vg_params p = star_params();
  p.seed = 7;
  counter c = {0, 0, 3};
  vg_callbacks cb;
  vg_callbacks_init(&cb);
  cb.progress = on_progress;
  cb.user = &c;
  vg_job* job = NULL;
  vg_result* res = NULL;
  CHECK(vg_job_start(model, &p, &cb, &job) == VG_OK, "second job start");
  CHECK(vg_job_wait(job, &res) == VG_CANCELLED && res == NULL, "cancelled from progress");
  CHECK(c.progress == 3, "stopped at step 3, got %d", c.progress);
  vg_job_free(job);
  /* The abort callback, polled every step. */
  vg_callbacks_init(&cb);
  cb.abort = abort_now;
  CHECK(vg_generate(model, &p, &cb, &res) == VG_CANCELLED, "abort callback cancels");
  /* vg_job_cancel before the first step. */
  CHECK(vg_job_start(model, &p, NULL, &job) == VG_OK, "third job start");
  vg_job_cancel(job);
  vg_status st = vg_job_wait(job, &res);
  CHECK(st == VG_CANCELLED || st == VG_OK, "vg_job_cancel ends the job, got %d", (int)st);
  vg_result_free(res);
  vg_job_free(job);
}

static void test_image_tasks(vg_model* model, const vg_image* init, const char* tmp_png) {
  vg_params p = star_params();
  p.init_image = init;
  p.strength = 0.5f;
  vg_result* res = NULL;
  CHECK(vg_generate(model, &p, NULL, &res) == VG_OK, "img2img");
  vg_image im;
  if (res) {
    CHECK(vg_result_image(res, 0, &im) == VG_OK && im.width == 64 && im.height == 64, "img2img size");
    CHECK(strstr(vg_result_infotext(res, 0), "Denoising strength: 0.5") != NULL, "%s", vg_result_infotext(res, 0));
    CHECK(strstr(vg_result_metadata_json(res), "\"image_to_image\"") || strstr(vg_result_metadata_json(res), "\"task\""),
          "metadata");
    vg_result_free(res);
  }
  /* Inpaint: a white (repaint) left half. */
  uint8_t* mask_px = calloc(64 * 64 * 3, 1);
  for (int y = 0; y < 64; ++y) memset(mask_px + (size_t)y * 64 * 3, 255, 32 * 3);
  vg_image mask = {64, 64, 3, mask_px};
  p.mask = &mask;
  p.strength = 1.0f;
  res = NULL;
  CHECK(vg_generate(model, &p, NULL, &res) == VG_OK, "inpaint");
  if (res) {
    CHECK(vg_result_image(res, 0, &im) == VG_OK && im.width == 64, "inpaint size");
    /* Outside the mask the original comes back (paste_back auto). */
    int same = 0;
    for (int y = 0; y < 64; ++y)
      for (int x = 48; x < 64; ++x) same += memcmp(im.pixels + (y * 64 + x) * 3, init->pixels + (y * 64 + x) * 3, 3) == 0;
    CHECK(same > 64 * 16 * 9 / 10, "unmasked pixels kept: %d of %d", same, 64 * 16);
    CHECK(vg_image_save(&im, tmp_png, vg_result_infotext(res, 0)) == VG_OK, "save png");
    vg_result_free(res);
  }
  free(mask_px);
  vg_image back;
  CHECK(vg_image_load(tmp_png, &back) == VG_OK && back.width == 64 && back.height == 64 && back.channels == 3,
        "load png (opaque: RGB)");
  vg_image_release(&back);
  CHECK(vg_image_load("/nonexistent/x.png", &back) == VG_FILE_NOT_FOUND, "missing image");
}

static void test_video(vg_context* ctx, const char* fixtures, const char* tmp_webp) {
  char path[4096];
  snprintf(path, sizeof path, "%s/wan22-tiny/models/wan22-tiny-ti2v", fixtures);
  vg_model* wan = NULL;
  CHECK(vg_model_load(ctx, path, NULL, &wan) == VG_OK, "load %s", path);
  if (!wan) return;
  CHECK(strstr(vg_model_info_json(wan), "\"video\":true") != NULL, "%s", vg_model_info_json(wan));
  vg_params p;
  vg_params_init(&p);
  p.prompt = "a red fox runs";
  p.width = p.height = 64;
  p.frames = 5;
  p.steps = 2;
  p.seed = 3;
  p.cfg_scale = 1.0f;
  p.sampler = "unipc";
  vg_result* res = NULL;
  CHECK(vg_generate(wan, &p, NULL, &res) == VG_OK, "text to video");
  if (res) {
    CHECK(vg_result_video_count(res) == 1 && vg_result_frame_count(res, 0) == 5, "one clip of 5 frames");
    vg_image f;
    CHECK(vg_result_frame(res, 0, 4, &f) == VG_OK && f.width == 64, "frame 4");
    CHECK(vg_result_frame(res, 0, 5, &f) == VG_INVALID_ARGUMENT, "frame 5 out of range");
    CHECK(vg_result_fps(res, 0) > 0, "fps");
    CHECK(vg_result_save_video(res, 0, tmp_webp) == VG_OK, "save webp");
    char dir[4200], frame_png[4300];
    snprintf(dir, sizeof dir, "%s.frames", tmp_webp);
    snprintf(frame_png, sizeof frame_png, "%s/frame_0004.png", dir);
    CHECK(vg_result_save_frames(res, 0, dir) == VG_OK, "save frames");
    FILE* f4 = fopen(frame_png, "rb");
    CHECK(f4 != NULL, "%s written", frame_png);
    if (f4) fclose(f4);
    for (int i = 0; i < 5; ++i) {
      snprintf(frame_png, sizeof frame_png, "%s/frame_%04d.png", dir, i);
      remove(frame_png);
    }
    rmdir(dir);
    /* Image to video from the first frame. */
    vg_image first;
    vg_result_frame(res, 0, 0, &first);
    p.init_image = &first;
    vg_result* res2 = NULL;
    CHECK(vg_generate(wan, &p, NULL, &res2) == VG_OK && vg_result_frame_count(res2, 0) == 5, "image to video");
    vg_result_free(res2);
    vg_result_free(res);
  }
  vg_model_free(wan);
}

int main(int argc, char** argv) {
  const char* fixtures = argc > 1 ? argv[1] : NULL;
  const char* tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
  char png[4096], webp[4096];
  snprintf(png, sizeof png, "%s/vg_c_api_test_%d.png", tmp, (int)getpid());
  snprintf(webp, sizeof webp, "%s/vg_c_api_test_%d.webp", tmp, (int)getpid());
  vg_context_params cp;
  vg_context_params_init(&cp);
  cp.threads = 2;
  vg_context* ctx = NULL;
  CHECK(vg_context_create(&cp, &ctx) == VG_OK, "context");
  CHECK(strlen(vg_context_default_model(ctx)) > 0, "the demo model is found");
  vg_model* model = NULL;
  CHECK(vg_model_load(ctx, "/nonexistent/model", NULL, &model) == VG_FILE_NOT_FOUND && !model, "missing model");
  CHECK(vg_model_load(ctx, NULL, NULL, &model) == VG_OK && model, "demo model");
  if (!model) return 1;
  CHECK(strstr(vg_model_info_json(model), "\"family\":\"sd1\"") != NULL, "%s", vg_model_info_json(model));
  test_errors_and_params(model);
  vg_result* star = generate_star(model);
  vg_image ref = {0, 0, 0, NULL};
  if (star) {
    CHECK(vg_result_image_count(star) == 1 && vg_result_image(star, 0, &ref) == VG_OK, "one image");
    CHECK(ref.width == 64 && ref.height == 64 && ref.channels == 3, "64x64 RGB");
    CHECK(vg_result_seed(star, 0) == 42, "seed");
    CHECK(strstr(vg_result_infotext(star, 0), "Seed: 42") != NULL, "%s", vg_result_infotext(star, 0));
    CHECK(vg_result_image(star, 1, &ref) == VG_INVALID_ARGUMENT, "image 1 out of range");
    vg_result_image(star, 0, &ref);
    test_job_and_versioned_struct(model, &ref);
    test_cancel(model);
    test_image_tasks(model, &ref, png);
    vg_result_free(star);
  }
  vg_model_free(model);
  if (fixtures) test_video(ctx, fixtures, webp);
  vg_context_free(ctx);
  remove(png);
  remove(webp);
  if (g_failures) fprintf(stderr, "%d check(s) failed\n", g_failures);
  else printf("c_api_test: all checks passed\n");
  return g_failures ? 1 : 0;
}
