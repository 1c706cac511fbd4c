// C API: running generations, on the caller's thread or as background jobs.

#include "capi/capi_internal.h"

struct vg_job {
  vg_model* model = nullptr;
  vg::capi::Request request;
  vg_callbacks callbacks{};
  std::atomic<bool> cancel{false}, done{false};
  vg_status status = VG_OK;
  std::string error;
  vg_result* result = nullptr;
  std::thread thread;
};

namespace vg::capi {

vg_status run(vg_model* model, const Request& req, const vg_callbacks& cb, const std::atomic<bool>* cancel,
              vg_result** out) {
  ProgressCallback progress = [&](const Progress& pr) {
    if (cancel && cancel->load()) return false;
    if (cb.abort && cb.abort(cb.user)) return false;
    if (pr.preview && cb.preview) {
      const vg_image im = to_c(*pr.preview);
      cb.preview(&im, pr.step, pr.total, cb.user);
    }
    if (cb.progress) {
      const vg_progress p{pr.stage, pr.step, pr.total, pr.stage_elapsed_s};
      if (cb.progress(&p, cb.user)) return false;
    }
    return true;
  };
  std::lock_guard<std::mutex> lock(model->run_mutex);
  auto r = model->engine->generate(req.params, req.inputs(), progress);
  if (!r) return fail_with(r.error());
  auto res = std::make_unique<vg_result>();
  res->metadata_json = result_metadata(req.params, *r);
  res->result = std::move(*r);
  *out = res.release();
  return VG_OK;
}

}  // namespace vg::capi

using vg::capi::fail_with;
using vg::capi::protect;

namespace {

// The checks vg_generate, vg_model_validate and vg_job_start share; converts the params.
vg_status prepare(vg_model* model, const vg_params* params, const vg_callbacks* callbacks, vg::capi::Request* req,
                  vg_callbacks* cb) {
  if (!model) return fail_with(VG_INVALID_ARGUMENT, "model must not be NULL (load one with vg_model_load)");
  if (!params) return fail_with(VG_INVALID_ARGUMENT, "params must not be NULL (start from vg_params_init)");
  auto r = vg::capi::to_request(vg::capi::versioned_copy(params, vg_params_init));
  if (!r) return fail_with(r.error());
  *req = std::move(*r);
  *cb = vg::capi::versioned_copy(callbacks, vg_callbacks_init);
  return VG_OK;
}

}  // namespace

extern "C" {

void vg_callbacks_init_sized(vg_callbacks* c, size_t size) { vg::capi::sized_init(c, size, vg_callbacks{}); }

vg_status vg_generate(vg_model* model, const vg_params* params, const vg_callbacks* callbacks, vg_result** out) {
  return protect([&] {
    if (!out) return fail_with(VG_INVALID_ARGUMENT, "vg_generate: out must not be NULL");
    *out = nullptr;
    vg::capi::Request req;
    vg_callbacks cb;
    if (vg_status st = prepare(model, params, callbacks, &req, &cb); st != VG_OK) return st;
    return vg::capi::run(model, req, cb, nullptr, out);
  });
}

vg_status vg_model_validate(vg_model* model, const vg_params* params) {
  return protect([&] {
    vg::capi::Request req;
    vg_callbacks cb;
    if (vg_status st = prepare(model, params, nullptr, &req, &cb); st != VG_OK) return st;
    vg::Status st = model->engine->validate_with(req.params, req.inputs());
    return st ? VG_OK : fail_with(st.error());
  });
}

vg_status vg_job_start(vg_model* model, const vg_params* params, const vg_callbacks* callbacks, vg_job** out) {
  return protect([&] {
    if (!out) return fail_with(VG_INVALID_ARGUMENT, "vg_job_start: out must not be NULL");
    *out = nullptr;
    auto job = std::make_unique<vg_job>();
    if (vg_status st = prepare(model, params, callbacks, &job->request, &job->callbacks); st != VG_OK) return st;
    job->model = model;
    vg_job* j = job.get();
    j->thread = std::thread([j] {
      j->status = protect([&] { return vg::capi::run(j->model, j->request, j->callbacks, &j->cancel, &j->result); });
      if (j->status != VG_OK) j->error = vg_last_error();
      j->done.store(true);
    });
    *out = job.release();
    return VG_OK;
  });
}

void vg_job_cancel(vg_job* job) {
  if (job) job->cancel.store(true);
}

int vg_job_done(const vg_job* job) { return job && job->done.load() ? 1 : 0; }

vg_status vg_job_wait(vg_job* job, vg_result** out) {
  return protect([&] {
    if (out) *out = nullptr;
    if (!job) return fail_with(VG_INVALID_ARGUMENT, "vg_job_wait: job must not be NULL");
    if (job->thread.joinable()) job->thread.join();
    if (job->status != VG_OK) return fail_with(job->status, job->error);
    if (!job->result) return fail_with(VG_INVALID_ARGUMENT, "vg_job_wait: this job's result was already taken");
    if (out) {
      *out = job->result;
      job->result = nullptr;
    }
    return VG_OK;
  });
}

void vg_job_free(vg_job* job) {
  if (!job) return;
  job->cancel.store(true);
  if (job->thread.joinable()) job->thread.join();
  vg_result_free(job->result);
  delete job;
}

}  // extern "C"
