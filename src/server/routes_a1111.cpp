// A1111/Forge-compatible /sdapi/v1 endpoints: txt2img, img2img, progress,
// interrupt, options, sd-models, samplers, schedulers.
#include <chrono>
#include <ctime>

#include "core/error.h"
#include "core/params_json.h"
#include "sampling/sampler.h"
#include "sampling/sigma_schedules.h"
#include "server/context.h"
#include "server/http_util.h"
#include "server/model_details.h"

namespace vg::server {

namespace {

void a1111_error(httplib::Response& res, const Error& e) {
  res.status = http_status(e.code);
  const std::string detail = e.message;
  res.set_content(json_text(nlohmann::json{{"error", "HTTPException"}, {"detail", detail}, {"body", ""}, {"errors", detail}}),
                  "application/json");
}

template <class T>
void take(const nlohmann::json& j, const char* key, T* out) {
  if (!j.contains(key) || j[key].is_null()) return;
  try {
    *out = j[key].get<T>();
  } catch (const nlohmann::json::exception&) {
    fail(ErrorCode::kInvalidArgument, std::string(key) + " has the wrong type");
  }
}

// A1111 field -> GenerateParams field, for the fields a client gave (FLUX/SD3
// take their preset for the rest).
const std::pair<const char*, const char*> kA1111Fields[] = {
    {"prompt", "prompt"}, {"negative_prompt", "negative_prompt"}, {"seed", "seed"}, {"steps", "steps"},
    {"cfg_scale", "cfg_scale"}, {"distilled_cfg_scale", "guidance"}, {"width", "width"}, {"height", "height"},
    {"eta", "eta"}, {"s_churn", "s_churn"}, {"s_noise", "s_noise"}, {"sampler_name", "sampler"},
    {"sampler_index", "sampler"}, {"scheduler", "scheduler"}, {"batch_size", "batch_size"}, {"n_iter", "batch_size"},
    {"denoising_strength", "strength"}, {"resize_mode", "resize_mode"}, {"mask_blur", "mask_blur"}};

JobRequest from_a1111(Context& ctx, const nlohmann::json& b, bool img2img) {
  if (!b.is_object()) fail(ErrorCode::kInvalidArgument, "the request body must be a JSON object");
  JobRequest r;
  GenerateParams& p = r.params;
  if (b.contains("override_settings") && b["override_settings"].is_object()) {
    const auto& o = b["override_settings"];
    take(o, "sd_model_checkpoint", &r.model);
    take(o, "CLIP_stop_at_last_layers", &p.clip_skip);
    if (o.contains("CLIP_stop_at_last_layers")) p.set_fields.push_back("clip_skip");
  }
  if (r.model.empty()) {
    std::lock_guard<std::mutex> lock(ctx.a1111_mu);
    r.model = ctx.a1111_model.empty() ? ctx.models.default_id() : ctx.a1111_model;
  }
  // The family decides the defaults (an unknown model is reported when the job is validated).
  std::string family;
  if (auto e = ctx.models.acquire(r.model)) family = (*e)->info().family;
  const bool dit = is_dit_family(family);
  if (dit) {
    for (const auto& [key, field] : kA1111Fields)
      if (b.contains(key) && !b[key].is_null()) p.set_fields.push_back(field);
  } else {  // A1111's own defaults, as A1111 runs SD models
    p.steps = 50;
    p.cfg_scale = 7.0f;
    p.width = p.height = 512;
    p.set_fields.clear();
  }
  if (dit) p.set_fields.push_back("prompt_syntax");  // so the preset applies even to a bare request
  p.prompt_syntax = "a1111";  // A1111 clients write (word:1.2), [word], BREAK and long prompts
  take(b, "prompt", &p.prompt);
  take(b, "negative_prompt", &p.negative_prompt);
  take(b, "seed", &p.seed);
  take(b, "steps", &p.steps);
  take(b, "cfg_scale", &p.cfg_scale);
  // Forge's Flux "Distilled CFG Scale"; other families have no such input (Forge ignores it there too)
  if (family == "flux") take(b, "distilled_cfg_scale", &p.guidance);
  take(b, "width", &p.width);
  take(b, "height", &p.height);
  take(b, "eta", &p.eta);
  take(b, "s_churn", &p.s_churn);
  take(b, "s_noise", &p.s_noise);
  std::string sampler = dit ? p.sampler : "Euler";
  take(b, "sampler_index", &sampler);
  take(b, "sampler_name", &sampler);
  p.sampler = sampler;
  std::string sched;
  take(b, "scheduler", &sched);
  if (!sched.empty()) p.scheduler = sched;
  int batch = 1, n_iter = 1;
  take(b, "batch_size", &batch);
  take(b, "n_iter", &n_iter);
  p.batch_size = batch * n_iter;
  if (!img2img) return r;
  if (!b.contains("init_images") || !b["init_images"].is_array() || b["init_images"].empty())
    fail(ErrorCode::kFileNotFound, "Init image not found");
  r.init_image = decode_image_field(b["init_images"][0].get<std::string>(), "init_images");
  p.init_image = "(upload)";
  p.width = p.height = 0;  // the init image's size
  if (dit) p.set_fields.push_back("width"), p.set_fields.push_back("height");
  take(b, "width", &p.width);
  take(b, "height", &p.height);
  take(b, "denoising_strength", &p.strength);
  int resize_mode = 0;
  take(b, "resize_mode", &resize_mode);
  static const char* kModes[] = {"just_resize", "crop_and_resize", "resize_and_fill"};
  if (resize_mode < 0 || resize_mode > 2) fail(ErrorCode::kInvalidArgument, "resize_mode must be 0, 1 or 2");
  p.resize_mode = kModes[resize_mode];
  if (b.contains("mask") && b["mask"].is_string() && !b["mask"].get<std::string>().empty()) {
    r.mask = decode_image_field(b["mask"].get<std::string>(), "mask");
    p.mask = "(upload)";
    p.mask_blur = 4;
    take(b, "mask_blur", &p.mask_blur);
    int invert = 0;
    take(b, "inpainting_mask_invert", &invert);
    p.invert_mask = invert != 0;
    take(b, "inpaint_full_res", &p.inpaint_full_res);
    take(b, "inpaint_full_res_padding", &p.inpaint_full_res_padding);
    p.paste_back = "on";  // A1111 always pastes back
  }
  return r;
}

nlohmann::json a1111_response(Context& ctx, Job& j, const nlohmann::json& request) {
  std::lock_guard<std::mutex> lock(j.mu);
  if (j.status != JobStatus::kCompleted)
    return {{"error", "HTTPException"}, {"detail", j.error.message}, {"body", ""}, {"errors", j.error.message}};
  nlohmann::json images = nlohmann::json::array(), seeds = nlohmann::json::array(), infotexts = nlohmann::json::array();
  for (const auto& im : j.images) {
    auto png = ctx.jobs.artifact(im.artifact_id);
    images.push_back(png ? base64_encode(*png) : "");
    seeds.push_back(im.seed);
    infotexts.push_back(im.infotext);
  }
  GenerateParams p = j.req.params;  // with what the preset filled (FLUX/SD3)
  params_from_json(nlohmann::json::parse(j.applied_preset_patch, nullptr, false), &p, false);
  std::time_t t = std::time(nullptr);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y%m%d%H%M%S", std::localtime(&t));
  nlohmann::json info = {{"prompt", p.prompt},
                         {"all_prompts", nlohmann::json::array()},
                         {"negative_prompt", p.negative_prompt},
                         {"seed", seeds.empty() ? nlohmann::json(p.seed) : seeds[0]},
                         {"all_seeds", seeds},
                         {"subseed", -1},
                         {"all_subseeds", nlohmann::json::array()},
                         {"width", j.images.empty() ? p.width : j.images[0].width},
                         {"height", j.images.empty() ? p.height : j.images[0].height},
                         {"sampler_name", p.sampler},
                         {"cfg_scale", p.cfg_scale},
                         {"distilled_cfg_scale", p.guidance >= 0 ? nlohmann::json(p.guidance) : nlohmann::json(nullptr)},
                         {"steps", p.steps},
                         {"batch_size", p.batch_size},
                         {"sd_model_name", j.model_used},
                         {"denoising_strength", p.init_image.empty() ? nlohmann::json(nullptr) : nlohmann::json(p.strength)},
                         {"extra_generation_params", p.guidance >= 0 ? nlohmann::json{{"Distilled CFG Scale", p.guidance}}
                                                                     : nlohmann::json::object()},
                         {"index_of_first_image", 0},
                         {"infotexts", infotexts},
                         {"styles", nlohmann::json::array()},
                         {"job_timestamp", stamp},
                         {"clip_skip", p.clip_skip},
                         {"is_using_inpainting_conditioning", false},
                         {"version", std::string("visiongen ") + version()}};
  for (size_t i = 0; i < j.images.size(); ++i) info["all_prompts"].push_back(p.prompt);
  return {{"images", images}, {"parameters", request}, {"info", json_text(info)}};
}

}  // namespace

void add_a1111_routes(Router& s, Context& ctx) {
  for (const char* kind : {"txt2img", "img2img"}) {
    const bool img = std::string(kind) == "img2img";
    s.Post(std::string("/sdapi/v1/") + kind, [&ctx, img](const httplib::Request& req, httplib::Response& res) {
      nlohmann::json body;
      JobRequest r;
      try {
        body = parse_json_body(req.body);
        r = from_a1111(ctx, body, img);
      } catch (const VgException& e) {
        return a1111_error(res, {e.code(), e.what()});
      }
      auto job = validate_and_submit(ctx, std::move(r));
      if (!job) return a1111_error(res, job.error());
      respond_when_done(ctx, res, *job, [&ctx, body](Job& j) { return a1111_response(ctx, j, body); });
    });
  }
  s.Get("/sdapi/v1/progress", [&ctx](const httplib::Request&, httplib::Response& res) {
    double progress = 0, eta = 0;
    int step = 0, steps = 0, job_count = 0;
    for (const auto& j : ctx.jobs.list()) {
      std::lock_guard<std::mutex> lock(j->mu);
      if (j->status == JobStatus::kRunning || j->status == JobStatus::kLoading) {
        job_count = 1;
        step = j->step;
        steps = j->steps;
        progress = steps > 0 ? 0.01 + static_cast<double>(step) / steps : 0.01;
        eta = j->eta_s > 0 ? j->eta_s : 0;
      }
    }
    send_json(res, {{"progress", std::min(progress, 1.0)},
                    {"eta_relative", eta},
                    {"state", {{"skipped", false}, {"interrupted", false}, {"job", job_count ? "txt2img" : ""},
                               {"job_count", job_count}, {"job_no", 0}, {"sampling_step", step}, {"sampling_steps", steps}}},
                    {"current_image", nullptr},
                    {"textinfo", nullptr}});
  });
  s.Post("/sdapi/v1/interrupt", [&ctx](const httplib::Request&, httplib::Response& res) {
    for (const auto& j : ctx.jobs.list()) {
      bool active;
      {
        std::lock_guard<std::mutex> lock(j->mu);
        active = j->status == JobStatus::kRunning || j->status == JobStatus::kLoading;
      }
      if (active) ctx.jobs.cancel(j->id);
    }
    send_json(res, nlohmann::json::object());
  });
  s.Get("/sdapi/v1/options", [&ctx](const httplib::Request&, httplib::Response& res) {
    std::string model;
    {
      std::lock_guard<std::mutex> lock(ctx.a1111_mu);
      model = ctx.a1111_model.empty() ? ctx.models.default_id() : ctx.a1111_model;
    }
    // Forge's UI preset for the current model's family ("all" until it is loaded): clients such
    // as SillyTavern read it to know they talk to Forge and may send distilled_cfg_scale
    std::string preset = "all";
    if (auto e = ctx.models.peek(model)) {
      const std::string f = e->info().family;
      preset = f == "flux" ? "flux" : f == "sdxl" ? "xl" : f == "sd1" || f == "sd2" ? "sd" : "all";
    }
    send_json(res, {{"sd_model_checkpoint", model}, {"CLIP_stop_at_last_layers", 1}, {"forge_preset", preset}});
  });
  s.Post("/sdapi/v1/options", [&ctx](const httplib::Request& req, httplib::Response& res) {
    nlohmann::json b;
    try {
      b = parse_json_body(req.body);
    } catch (const VgException& e) {
      return a1111_error(res, {e.code(), e.what()});
    }
    if (b.contains("sd_model_checkpoint") && b["sd_model_checkpoint"].is_string()) {
      const std::string id = b["sd_model_checkpoint"].get<std::string>();
      auto e = ctx.models.acquire(id);
      if (!e) return a1111_error(res, e.error());
      std::lock_guard<std::mutex> lock(ctx.a1111_mu);
      ctx.a1111_model = ctx.models.resolve(id).id;
    }
    send_json(res, nullptr);
  });
  s.Get("/sdapi/v1/sd-models", [&ctx](const httplib::Request&, httplib::Response& res) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& m : ctx.models.list())
      out.push_back({{"title", m.id}, {"model_name", m.id}, {"hash", nullptr}, {"sha256", nullptr}, {"filename", m.id}, {"config", nullptr}});
    send_json(res, out);
  });
  s.Get("/sdapi/v1/samplers", [](const httplib::Request&, httplib::Response& res) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& si : sampler_table()) {
      nlohmann::json aliases = si.aliases;
      aliases.push_back(si.id);
      out.push_back({{"name", si.a1111}, {"aliases", aliases}, {"options", nlohmann::json::object()}});
    }
    send_json(res, out);
  });
  s.Get("/sdapi/v1/schedulers", [](const httplib::Request&, httplib::Response& res) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& n : schedule_names())
      out.push_back({{"name", n}, {"label", n == "default" ? "Automatic" : n}, {"aliases", nlohmann::json::array()},
                     {"default_rho", n == "karras" ? nlohmann::json(7.0) : nlohmann::json(-1)}, {"need_inner_model", false}});
    send_json(res, out);
  });
}

}  // namespace vg::server
