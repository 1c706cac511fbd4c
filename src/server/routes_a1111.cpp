// A1111/Forge-compatible /sdapi/v1 endpoints: txt2img, img2img, png-info,
// progress, interrupt, options, sd-models, samplers, schedulers.
#include <chrono>
#include <ctime>

#include "core/error.h"
#include "core/params_json.h"
#include "sampling/sampler.h"
#include "sampling/sigma_schedules.h"
#include "server/a1111_request.h"
#include "server/context.h"
#include "server/http_util.h"

namespace vg::server {

namespace {

void a1111_error(httplib::Response& res, const Error& e) {
  res.status = http_status(e.code);
  const std::string detail = e.message;
  res.set_content(json_text(nlohmann::json{{"error", "HTTPException"}, {"detail", detail}, {"body", ""}, {"errors", detail}}),
                  "application/json");
}

// A1111's current checkpoint: the one POST /sdapi/v1/options chose, else the default.
std::string checkpoint(Context& ctx) {
  std::lock_guard<std::mutex> lock(ctx.a1111_mu);
  return ctx.a1111_model.empty() ? ctx.models.default_id() : ctx.a1111_model;
}

nlohmann::json a1111_response(Context& ctx, Job& j, const nlohmann::json& request) {
  std::lock_guard<std::mutex> lock(j.mu);
  if (j.status != JobStatus::kCompleted)
    return {{"error", "HTTPException"}, {"detail", j.error.message}, {"body", ""}, {"errors", j.error.message}};
  nlohmann::json images = nlohmann::json::array(), seeds = nlohmann::json::array(), infotexts = nlohmann::json::array();
  for (const auto& im : j.images) {
    auto png = ctx.jobs->artifact(im.artifact_id);
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
        r = a1111_request(body, img, checkpoint(ctx), family_lookup(ctx));
      } catch (const VgException& e) {
        return a1111_error(res, {e.code(), e.what()});
      }
      auto job = validate_and_submit(ctx, std::move(r));
      if (!job) return a1111_error(res, job.error());
      respond_when_done(ctx, res, *job, [&ctx, body](Job& j) { return a1111_response(ctx, j, body); });
    });
  }
  s.Post("/sdapi/v1/png-info", [](const httplib::Request& req, httplib::Response& res) {
    try {
      send_json(res, a1111_png_info(parse_json_body(req.body)));
    } catch (const VgException& e) {
      a1111_error(res, {e.code(), e.what()});
    }
  });
  s.Get("/sdapi/v1/progress", [&ctx](const httplib::Request&, httplib::Response& res) {
    double progress = 0, eta = 0;
    int step = 0, steps = 0, job_count = 0;
    for (const auto& j : ctx.jobs->list()) {
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
    for (const auto& j : ctx.jobs->list()) {
      bool active;
      {
        std::lock_guard<std::mutex> lock(j->mu);
        active = j->status == JobStatus::kRunning || j->status == JobStatus::kLoading;
      }
      if (active) ctx.jobs->cancel(j->id);
    }
    send_json(res, nlohmann::json::object());
  });
  s.Get("/sdapi/v1/options", [&ctx](const httplib::Request&, httplib::Response& res) {
    const std::string model = checkpoint(ctx);
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
