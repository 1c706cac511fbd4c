#include "server/job_runner.h"

#include <algorithm>
#include <cstdio>

#include "core/error.h"
#include "core/hash.h"
#include "io/image_io.h"
#include "io/video_io.h"
#include "server/http_util.h"

namespace vg::server {

void run_job(ModelPool& models, const std::shared_ptr<Job>& j, const RunHooks& hooks) {
  const auto t0 = std::chrono::steady_clock::now();
  {
    std::lock_guard<std::mutex> jl(j->mu);
    j->status = JobStatus::kLoading;
    j->phase = "loading";
    j->push_event_locked("progress", {{"status", "loading"}, {"phase", "loading"}, {"step", 0}, {"steps", 0}});
  }
  auto finish_error = [&](const Error& e) {
    std::lock_guard<std::mutex> jl(j->mu);
    const bool cancelled = e.code == ErrorCode::kCancelled;
    j->status = cancelled ? JobStatus::kCancelled : JobStatus::kFailed;
    j->phase = job_status_name(j->status);
    j->error = e;
    j->push_event_locked(cancelled ? "cancelled" : "error",
                         {{"id", j->id}, {"code", error_code_name(e.code)}, {"message", e.message}});
  };
  auto engine = models.acquire(j->req.model);
  if (!engine) return finish_error(engine.error());
  if (j->cancel_requested) return finish_error({ErrorCode::kCancelled, "the job was cancelled"});
  {
    std::lock_guard<std::mutex> jl(j->mu);
    j->model_used = models.resolve(j->req.model).id;
    j->status = JobStatus::kRunning;
    j->phase = "text_encode";
  }
  ImageInputs in;
  if (j->req.init_image) in.init_image = &*j->req.init_image;
  if (j->req.mask) in.mask = &*j->req.mask;
  const int n_images = j->req.params.batch_size;
  int image_index = 0;
  double last_step_s = 0;
  auto cb = [&](const Progress& p) {
    if (j->cancel_requested) return false;
    std::lock_guard<std::mutex> jl(j->mu);
    j->phase = p.stage;
    if (std::string(p.stage) == "denoise") {
      if (p.step == 0 || p.step < j->step) last_step_s = 0;
      j->steps = p.total * n_images;
      j->step = std::min(j->steps, image_index * p.total + p.step);
      if (p.step > 0) {
        if (hooks.step_done) hooks.step_done(p.stage_elapsed_s - last_step_s);
        last_step_s = p.stage_elapsed_s;
        j->eta_s = p.stage_elapsed_s / p.step * (j->steps - j->step);
      }
      if (p.step == p.total) ++image_index;
    }
    j->push_event_locked("progress", {{"status", "running"}, {"phase", p.stage}, {"step", j->step}, {"steps", j->steps},
                                      {"eta_s", j->eta_s}});
    if (p.preview) {
      auto png = guard([&] { return encode_png(*p.preview, ""); });
      if (png)
        j->push_event_locked("preview", {{"step", j->step}, {"steps", j->steps}, {"mime", "image/png"},
                                         {"b64", base64_encode(*png)}});
    }
    return true;
  };
  auto res = (*engine)->generate(j->req.params, in, cb);
  if (!res) return finish_error(res.error());
  if (!res->videos.empty()) {
    std::lock_guard<std::mutex> jl(j->mu);
    j->phase = "video_encode";
    j->push_event_locked("progress", {{"status", "running"}, {"phase", "video_encode"}, {"step", j->step},
                                      {"steps", j->steps}, {"eta_s", j->eta_s}});
  }
  std::vector<JobImage> out;
  const size_t n_out = res->videos.empty() ? res->images.size() : res->videos.size();
  for (size_t i = 0; i < n_out; ++i) {
    const bool video = !res->videos.empty();
    auto enc = guard([&] {
      return video ? encode_video(res->videos[i], j->req.video_format, res->infotext[i])
                   : encode_png(res->images[i], res->infotext[i]);
    });
    if (!enc) return finish_error(enc.error());
    JobImage im{sha256_hex(*enc), 0, 0, res->seeds[i], res->infotext[i]};
    if (video) {
      const Video& v = res->videos[i];
      im.width = v.width, im.height = v.height, im.frames = static_cast<int>(v.frames.size()), im.fps = v.fps;
      im.mime = video_mime(j->req.video_format);
    } else {
      im.width = res->images[i].width, im.height = res->images[i].height;
    }
    nlohmann::json info = {{"job", j->id}, {"model", models.resolve(j->req.model).id}, {"seed", res->seeds[i]},
                           {"infotext", res->infotext[i]}, {"sampler_in", res->sampling.sampler_in},
                           {"sampler_effective", res->sampling.sampler_effective}, {"scheduler_in", res->sampling.scheduler_in},
                           {"scheduler_effective", res->sampling.scheduler_effective},
                           {"timings", {{"load", res->timings.load_s}, {"text_encode", res->timings.text_encode_s},
                                        {"denoise", res->timings.denoise_s}, {"decode", res->timings.decode_s}}}};
    if (video) info["frames"] = im.frames, info["fps"] = im.fps;
    auto put = guard([&] { return hooks.put(*enc, im, info); });
    if (!put) return finish_error(put.error());
    im.url = *put;
    out.push_back(std::move(im));
  }
  std::fprintf(stderr, "[GEN][cpu] job=%s model=%s size=%dx%d steps=%d sampler=%s t_load=%.2f t_denoise=%.2f t_decode=%.2f images=%zu\n",
               j->id.c_str(), models.resolve(j->req.model).id.c_str(), out.empty() ? 0 : out[0].width,
               out.empty() ? 0 : out[0].height, j->req.params.steps, res->sampling.sampler_effective.c_str(),
               res->timings.load_s, res->timings.denoise_s, res->timings.decode_s, out.size());
  std::lock_guard<std::mutex> jl(j->mu);
  j->images = std::move(out);
  j->warnings = res->warnings;
  j->sampling = res->sampling;
  j->applied_preset_patch = res->applied_preset_patch.empty() ? "{}" : res->applied_preset_patch;
  j->status = JobStatus::kCompleted;
  j->finished = std::chrono::system_clock::now();
  j->phase = "completed";
  j->step = j->steps;
  j->eta_s = 0;
  j->elapsed_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  j->push_event_locked("completed", j->to_json_locked(0));
}

}  // namespace vg::server
