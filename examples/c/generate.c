/* visiongen from C: draw one image with the demo model (or argv[2]), then
 * start a second job and cancel it from its own progress callback.
 *   cc -std=c11 generate.c $(pkg-config --cflags --libs visiongen) -o generate
 *   ./generate star.png [MODEL] */
#include <stdio.h>
#include <string.h>

#include <visiongen/visiongen_c.h>

static int report(const vg_progress* p, void* user) {
  int* steps = (int*)user;
  if (strcmp(p->stage, "denoise") == 0) printf("  %s step %d/%d\n", p->stage, p->step, p->total);
  if (strcmp(p->stage, "denoise") == 0) ++*steps;
  return 0; /* keep going */
}

static int cancel_after_two(const vg_progress* p, void* user) {
  int* steps = (int*)user;
  if (strcmp(p->stage, "denoise") == 0) ++*steps;
  return *steps >= 2; /* nonzero = cancel */
}

int main(int argc, char** argv) {
  const char* out = argc > 1 ? argv[1] : "star.png";
  const char* model_path = argc > 2 ? argv[2] : NULL; /* NULL = the demo model */
  vg_context* ctx = NULL;
  vg_model* model = NULL;
  if (vg_context_create(NULL, &ctx) != VG_OK || vg_model_load(ctx, model_path, NULL, &model) != VG_OK) {
    fprintf(stderr, "load failed: %s\n", vg_last_error());
    return 1;
  }
  vg_params p;
  vg_params_init(&p);
  p.prompt = "a red star on a white background";
  p.seed = 42;
  int steps = 0;
  vg_callbacks cb;
  vg_callbacks_init(&cb);
  cb.progress = report;
  cb.user = &steps;
  vg_result* res = NULL;
  vg_status st = vg_generate(model, &p, &cb, &res);
  if (st != VG_OK) {
    fprintf(stderr, "generate failed (%s): %s\n", vg_status_name(st), vg_last_error());
    return 1;
  }
  vg_image img;
  vg_result_image(res, 0, &img);
  if (vg_image_save(&img, out, vg_result_infotext(res, 0)) != VG_OK) {
    fprintf(stderr, "save failed: %s\n", vg_last_error());
    return 1;
  }
  printf("wrote %s (%dx%d, %d steps)\n", out, img.width, img.height, steps);
  vg_result_free(res);

  /* A second job, cancelled from its progress callback. */
  int steps2 = 0;
  cb.progress = cancel_after_two;
  cb.user = &steps2;
  vg_job* job = NULL;
  p.seed = 43;
  vg_job_start(model, &p, &cb, &job);
  st = vg_job_wait(job, &res);
  printf("second job: %s after %d steps\n", vg_status_name(st), steps2);
  vg_job_free(job);
  vg_model_free(model);
  vg_context_free(ctx);
  return st == VG_CANCELLED ? 0 : 1;
}
