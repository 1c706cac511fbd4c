// C API: errors, version, contexts and models.
#include <nlohmann/json.hpp>

#include "capi/capi_internal.h"
#include "core/data_dir.h"

namespace vg::capi {

thread_local std::string t_last_error;  // vg_last_error(): per thread

vg_status fail_with(const Error& e) {
  t_last_error = e.message;
  return static_cast<vg_status>(e.code);
}

vg_status fail_with(vg_status code, const std::string& message) {
  return fail_with(Error{static_cast<ErrorCode>(code), message});
}

}  // namespace vg::capi

using vg::capi::fail_with;
using vg::capi::protect;

extern "C" {

const char* vg_status_name(vg_status status) {
  if (status < VG_OK || status > VG_QUEUE_UNAVAILABLE) return "unknown";
  return vg::error_code_name(static_cast<vg::ErrorCode>(status));
}

const char* vg_last_error(void) { return vg::capi::t_last_error.c_str(); }

const char* vg_version(void) { return vg::version(); }
int32_t vg_abi_version(void) { return VG_ABI_VERSION; }

void vg_context_params_init_sized(vg_context_params* p, size_t size) {
  vg::capi::sized_init(p, size, vg_context_params{});
}

vg_status vg_context_create(const vg_context_params* params, vg_context** out) {
  return protect([&] {
    if (!out) return fail_with(VG_INVALID_ARGUMENT, "vg_context_create: out must not be NULL");
    *out = nullptr;
    const vg_context_params p = vg::capi::versioned_copy(params, vg_context_params_init);
    if (p.threads < 0) return fail_with(VG_INVALID_ARGUMENT, "threads must be 0 (all cores) or more");
    auto ctx = std::make_unique<vg_context>();
    ctx->threads = p.threads;
    ctx->default_model = vg::default_model_path(p.data_dir ? p.data_dir : "");
    *out = ctx.release();
    return VG_OK;
  });
}

void vg_context_free(vg_context* ctx) { delete ctx; }

const char* vg_context_default_model(const vg_context* ctx) { return ctx ? ctx->default_model.c_str() : ""; }

void vg_load_options_init_sized(vg_load_options* o, size_t size) { vg::capi::sized_init(o, size, vg_load_options{}); }

namespace {

void set_if(std::string* field, const char* value) {
  if (value) *field = value;
}

std::string info_json(const vg::Engine& e) {
  const vg::ModelInfo& m = e.info();
  nlohmann::json j = {{"name", m.name},
                      {"family", m.family},
                      {"preset_family", e.preset_family()},
                      {"path", m.path},
                      {"prediction_type", m.prediction_type},
                      {"default_width", m.default_width},
                      {"default_height", m.default_height},
                      {"size_multiple", m.size_multiple},
                      {"vae_scale", m.vae_scale},
                      {"video", m.video},
                      {"default_frames", m.default_frames},
                      {"precision", m.precision},
                      {"precision_source", m.precision_source}};
  return j.dump();
}

}  // namespace

vg_status vg_model_load(vg_context* ctx, const char* path, const vg_load_options* options, vg_model** out) {
  return protect([&] {
    if (!out) return fail_with(VG_INVALID_ARGUMENT, "vg_model_load: out must not be NULL");
    *out = nullptr;
    if (!ctx) return fail_with(VG_INVALID_ARGUMENT, "vg_model_load: create a context first (vg_context_create)");
    const vg_load_options o = vg::capi::versioned_copy(options, vg_load_options_init);
    std::string model = path ? path : "";
    if (model.empty()) model = ctx->default_model;
    if (model.empty())
      return fail_with(VG_FILE_NOT_FOUND,
                       "no model path given and the demo model is not installed; pass a path or set VG_DATA_DIR");
    vg::LoadOptions lo;
    lo.threads = ctx->threads;
    set_if(&lo.precision, o.precision);
    set_if(&lo.lora_mode, o.lora_mode);
    set_if(&lo.quant_compute, o.quant_compute);
    set_if(&lo.tokenizer_dir, o.tokenizer_dir);
    set_if(&lo.config_dir, o.config_dir);
    set_if(&lo.vae_file, o.vae);
    set_if(&lo.unet_file, o.unet);
    set_if(&lo.transformer_file, o.transformer);
    lo.keep_text_encoder = o.keep_text_encoder != 0;
    auto e = vg::Engine::load(model, lo);
    if (!e) return fail_with(e.error());
    auto m = std::make_unique<vg_model>();
    m->engine = std::move(*e);
    m->info_json = info_json(*m->engine);
    *out = m.release();
    return VG_OK;
  });
}

void vg_model_free(vg_model* model) {
  if (!model) return;
  { std::lock_guard<std::mutex> lock(model->run_mutex); }  // a running generation finishes first
  delete model;
}

const char* vg_model_info_json(const vg_model* model) { return model ? model->info_json.c_str() : "{}"; }

}  // extern "C"
