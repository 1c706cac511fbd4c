#include <algorithm>
#include <sys/resource.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>

#include "artifacts/store.h"
#include "cli/commands.h"
#include "cli/component_flags.h"
#include "core/data_dir.h"
#include "core/error.h"
#include "core/params_json.h"
#include "hub/hub.h"
#include "io/atomic_file.h"
#include "io/hf_cache.h"
#include "io/video_io.h"
#include "visiongen/manager.h"
#include "visiongen/visiongen.h"

namespace vg::cli {

namespace {

int g_exit = 0;

struct GenerateOptions {
  GenerateParams params;
  std::string preview_path;
  std::string quant_compute = "native";
  std::string output_frames;  // --output-frames DIR (video models)
  bool output_given = false;  // -o was on the command line
  std::string model, output = "output.png", tokenizer, unet_file, log_format = "text", artifact_dir, device = "auto";
  bool log_format_given = false, allow_download = false;
  int threads = 0;
  std::string precision = "auto";
  bool quiet = false, progress = false;
  std::vector<std::string> loras, lora_dirs;  // --lora (repeatable), --lora-dir
  std::string lora_mode = "merge";
  LoadOptions components;  // --transformer, --clip-l, ..., --config (component_flags.h)
};

const ParamField& field(const char* name) {
  for (const auto& f : param_fields())
    if (std::string(f.name) == name) return f;
  throw std::logic_error(std::string("no param field ") + name);
}

std::string flags(const ParamField& f) {
  return std::string(f.short_flag).empty() ? f.flag : std::string(f.short_flag) + "," + f.flag;
}

std::string numbered(const std::string& path, int i, int n) {
  if (n == 1) return path;
  std::filesystem::path p(path);
  return (p.parent_path() / (p.stem().string() + "-" + std::to_string(i) + p.extension().string())).string();
}

// A video model's clips: -o by its extension (.mp4, .webm, .webp, .gif; the
// default output.png becomes output.mp4) and/or --output-frames DIR.
bool save_videos(const GenerateOptions& o, const GenerateResult& res, const std::string& model) {
  const int n = static_cast<int>(res.videos.size());
  std::string out = o.output;
  if (!o.output_given) out = "output.mp4";
  for (int i = 0; i < n; ++i) {
    const Video& v = res.videos[i];
    if (!o.output_frames.empty()) {
      const std::string dir = n == 1 ? o.output_frames : o.output_frames + "-" + std::to_string(i);
      if (Status s = save_video_frames(v, dir, res.infotext[i]); !s) {
        g_exit = report_error(s.error());
        return false;
      }
      if (!o.quiet) std::printf("%s/frame_0000.png .. frame_%04d.png (seed %llu)\n", dir.c_str(),
                                static_cast<int>(v.frames.size()) - 1, static_cast<unsigned long long>(res.seeds[i]));
      if (!o.output_given) continue;
    }
    const std::string path = numbered(out, i, n);
    if (Status s = save_video(v, path, res.infotext[i]); !s) {
      g_exit = report_error(s.error());
      return false;
    }
    if (!o.quiet)
      std::printf("%s (%d frames at %g fps, seed %llu)\n", path.c_str(), static_cast<int>(v.frames.size()), v.fps,
                  static_cast<unsigned long long>(res.seeds[i]));
    if (o.artifact_dir.empty()) continue;
    auto ref = guard([&] {  // the clip with its frames, fps and what made it
      nlohmann::json info = {{"params", params_to_json(o.params)}, {"seed", res.seeds[i]}, {"model", model},
                             {"infotext", res.infotext[i]}, {"frames", v.frames.size()}, {"fps", v.fps},
                             {"warnings", res.warnings}};
      const std::string ext = std::filesystem::path(path).extension().string().substr(1);
      return ArtifactStore(o.artifact_dir).put(read_file(path), video_mime(ext), v.width, v.height, info,
                                               static_cast<int>(v.frames.size()), v.fps);
    });
    if (!ref) {
      g_exit = report_error(ref.error());
      return false;
    }
    if (!o.quiet) std::printf("artifact %s\n", ref->id.c_str());
  }
  return true;
}

void run_generate(const GenerateOptions& o) {
  const bool show = !o.quiet && (o.progress || isatty(STDERR_FILENO));
  // The same checks as every front end: task, engine capabilities, device, parameters.
  TaskRequest tr;
  tr.task = o.params.task;
  tr.params = o.params;
  tr.device = o.device;
  Status v = VisionManager().validate(tr);
  if (!v) {
    g_exit = report_error(v.error());
    return;
  }
  LoadOptions lo = o.components;
  lo.threads = o.threads;
  lo.precision = o.precision;
  const std::string model = o.model.empty() ? default_model_path() : o.model;
  if (model.empty()) {
    g_exit = report_error({ErrorCode::kInvalidArgument, "no model given and the demo model (models/visiongen-shapes) was not found; pass -m PATH"});
    return;
  }
  lo.tokenizer_dir = o.tokenizer;
  lo.unet_file = o.unet_file;
  lo.vae_file = o.params.vae;  // FLUX/SD3 load their VAE with the model (SD swaps it per request)
  lo.quant_compute = o.quant_compute;
  lo.lora_dirs = o.lora_dirs;
  lo.lora_mode = o.lora_mode;
  if (o.allow_download && looks_like_repo_ref(model) && !path_exists(model) && !hf_cached_snapshot(model)) {
    hub::PullOptions po;
    const size_t at = model.find('@');
    if (at != std::string::npos) po.revision = model.substr(at + 1);
    po.include = {"*.json", "*.txt", "*.safetensors", "*.yaml"};
    if (show) std::fprintf(stderr, "downloading %s into %s ...\n", model.c_str(), hf_cache_dir().c_str());
    auto pulled = guard([&] { return hub::pull_model(hub::HubConfig::from_env(), model.substr(0, at), po); });
    if (!pulled) {
      g_exit = report_error(pulled.error());
      return;
    }
  }
  if (show) std::fprintf(stderr, "loading %s ...\n", model.c_str());
  auto engine = Engine::load(model, lo);
  if (!engine) {
    g_exit = report_error(engine.error());
    return;
  }
  if ((*engine)->info().video && o.output_given && !is_video_path(o.output)) {
    g_exit = report_error({ErrorCode::kInvalidArgument, "this model makes videos: -o '" + o.output +
                                                            "' must end in .mp4, .webm, .webp or .gif (or use --output-frames DIR)"});
    return;
  }
  // Previews go to a file replaced atomically, so a viewer never sees half an image.
  std::string preview_path = o.preview_path;
  if (preview_path.empty() && o.params.preview_every > 0)
    preview_path = (std::filesystem::path(o.output).parent_path() / "preview.png").string();
  auto cb = [&](const Progress& p) {
    if (p.preview && !preview_path.empty()) save_image(*p.preview, preview_path);
    if (!show) return true;
    if (std::string(p.stage) == "denoise" && p.step > 0) {
      const double per = p.stage_elapsed_s / p.step;
      std::fprintf(stderr, "\rdenoise %d/%d  %.2f s/it  ETA %.1f s   ", p.step, p.total, per,
                   per * (p.total - p.step));
      if (p.step == p.total) std::fprintf(stderr, "\n");
    }
    return true;
  };
  auto res = (*engine)->generate(o.params, cb);
  if (!res) {
    g_exit = report_error(res.error());
    return;
  }
  if (!o.quiet)
    for (const auto& w : res->warnings) std::fprintf(stderr, "warning: %s\n", w.c_str());
  if (show) {
    const auto& sm = res->sampling;
    std::fprintf(stderr, "sampler %s (asked: %s), scheduler %s (asked: %s), rng %s\n", sm.sampler_effective.c_str(),
                 sm.sampler_in.c_str(), sm.scheduler_effective.c_str(), sm.scheduler_in.c_str(), sm.rng.c_str());
  }
  if (!res->videos.empty() && !save_videos(o, *res, model)) return;
  const int n = static_cast<int>(res->images.size());
  for (int i = 0; i < n; ++i) {
    const std::string path = numbered(o.output, i, n);
    Status s = save_image(res->images[i], path, res->infotext[i]);
    if (!s) {
      g_exit = report_error(s.error());
      return;
    }
    if (!o.quiet) std::printf("%s (seed %llu)\n", path.c_str(), static_cast<unsigned long long>(res->seeds[i]));
    if (!o.artifact_dir.empty()) {
      auto ref = guard([&] {
        rusage ru{};
        getrusage(RUSAGE_SELF, &ru);
        const auto& t = res->timings;
        nlohmann::json info = {{"params", params_to_json(o.params)}, {"seed", res->seeds[i]}, {"model", model},
                               {"infotext", res->infotext[i]},
                               {"sampler_in", res->sampling.sampler_in}, {"sampler_effective", res->sampling.sampler_effective},
                               {"scheduler_in", res->sampling.scheduler_in}, {"scheduler_effective", res->sampling.scheduler_effective},
                               {"applied_preset_patch", nlohmann::json::parse(res->applied_preset_patch.empty() ? "{}" : res->applied_preset_patch)},
                               {"timings", {{"load", t.load_s}, {"text_encode", t.text_encode_s}, {"denoise", t.denoise_s}, {"decode", t.decode_s}}},
                               {"peak_rss_mb", std::max({ru.ru_maxrss / 1024.0, t.load_peak_rss_mb, t.text_encode_peak_rss_mb, t.denoise_peak_rss_mb, t.decode_peak_rss_mb})}, {"warnings", res->warnings},
                               {"precision", (*engine)->info().precision},
                               {"precision_source", (*engine)->info().precision_source}};
        return ArtifactStore(o.artifact_dir).put(read_file(path), "image/png", res->images[i].width, res->images[i].height, info);
      });
      if (!ref) {
        g_exit = report_error(ref.error());
        return;
      }
      if (!o.quiet) std::printf("artifact %s\n", ref->id.c_str());
    }
  }
  if (!o.quiet && (show || o.log_format_given)) {
    const auto& t = res->timings;
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    const double rss_mb = std::max({ru.ru_maxrss / 1024.0, t.load_peak_rss_mb, t.text_encode_peak_rss_mb, t.denoise_peak_rss_mb, t.decode_peak_rss_mb});
    const Image& im = res->videos.empty() ? res->images.front() : res->videos.front().frames.front();
    if (o.log_format == "json") {
      nlohmann::json j = {{"event", "generate"}, {"engine", "cpu"}, {"model", model}, {"task", o.params.task},
                          {"width", im.width}, {"height", im.height}, {"steps", o.params.steps},
                          {"sampler", res->sampling.sampler_effective}, {"scheduler", res->sampling.scheduler_effective},
                          {"t_load", t.load_s}, {"t_text_encode", t.text_encode_s}, {"t_denoise", t.denoise_s},
                          {"t_decode", t.decode_s}, {"peak_rss_mb", rss_mb},
                          {"peak_rss_mb_by_phase", {{"load", t.load_peak_rss_mb}, {"text_encode", t.text_encode_peak_rss_mb},
                                                    {"denoise", t.denoise_peak_rss_mb}, {"decode", t.decode_peak_rss_mb}}}, {"precision", (*engine)->info().precision},
                          {"precision_source", (*engine)->info().precision_source},
                          {"applied_preset_patch", nlohmann::json::parse(res->applied_preset_patch.empty() ? "{}" : res->applied_preset_patch)}};
      std::fprintf(stderr, "%s\n", j.dump().c_str());
    } else {
      std::fprintf(stderr, "[GEN][cpu] model=%s task=%s size=%dx%d steps=%d sampler=%s precision=%s precision_by=\"%s\" t_load=%.2f t_text_encode=%.2f t_denoise=%.2f t_decode=%.2f peak_rss=%.0fMB rss_load=%.0fMB rss_text=%.0fMB rss_denoise=%.0fMB rss_decode=%.0fMB preset_patch=%s\n",
                   model.c_str(), o.params.task.c_str(), im.width, im.height, o.params.steps,
                   res->sampling.sampler_effective.c_str(), (*engine)->info().precision.c_str(),
                   (*engine)->info().precision_source.c_str(), t.load_s, t.text_encode_s, t.denoise_s, t.decode_s, rss_mb,
                   t.load_peak_rss_mb, t.text_encode_peak_rss_mb, t.denoise_peak_rss_mb, t.decode_peak_rss_mb,
                   res->applied_preset_patch.empty() ? "{}" : res->applied_preset_patch.c_str());
    }
  }
}

}  // namespace

int report_error(const Error& e) {
  std::fprintf(stderr, "error [%s]: %s\n", error_code_name(e.code), e.message.c_str());
  return 10 + static_cast<int>(e.code);
}

int exit_code() { return g_exit; }
void set_exit_code(int code) { g_exit = code; }

void add_generate(CLI::App& app) {
  auto opts = std::make_shared<GenerateOptions>();
  auto* cmd = app.add_subcommand("generate", "generate images from a prompt, optionally starting from an image (--init-image) and a mask (--mask)");
  auto& p = opts->params;
  cmd->add_option("-m,--model", opts->model, "diffusers folder or single-file .safetensors checkpoint (default: the demo model in models/)");
  cmd->add_option(flags(field("prompt")), p.prompt, field("prompt").help)->required();
  cmd->add_option(flags(field("task")), p.task, field("task").help)->capture_default_str();
  cmd->add_option(flags(field("mode")), p.mode, field("mode").help)->capture_default_str();
  cmd->add_option(flags(field("loras")), opts->loras, field("loras").help)->allow_extra_args(false);
  cmd->add_option("--lora-dir", opts->lora_dirs, "folder searched for --lora / <lora:name> names (repeatable; then $VG_LORA_DIR)")
      ->allow_extra_args(false);
  cmd->add_option("--lora-mode", opts->lora_mode, "merge: LoRAs added into the weights; runtime: weights kept, updates added per layer output")
      ->capture_default_str()->check(CLI::IsMember({"merge", "runtime"}));
  cmd->add_option(flags(field("negative_prompt")), p.negative_prompt, field("negative_prompt").help);
  cmd->add_option(flags(field("steps")), p.steps, field("steps").help)->capture_default_str();
  cmd->add_option(flags(field("sampler")), p.sampler, field("sampler").help)->capture_default_str();
  cmd->add_option(flags(field("scheduler")), p.scheduler, field("scheduler").help)->capture_default_str();
  cmd->add_option(flags(field("rng")), p.rng, field("rng").help)->capture_default_str();
  cmd->add_option(flags(field("eta")), p.eta, field("eta").help)->capture_default_str();
  cmd->add_option(flags(field("s_noise")), p.s_noise, field("s_noise").help)->capture_default_str();
  cmd->add_option(flags(field("s_churn")), p.s_churn, field("s_churn").help)->capture_default_str();
  cmd->add_option(flags(field("cfg_scale")), p.cfg_scale, field("cfg_scale").help)->capture_default_str();
  cmd->add_option(flags(field("seed")), p.seed, field("seed").help)->capture_default_str();
  cmd->add_option(flags(field("width")), p.width, field("width").help)->capture_default_str();
  cmd->add_option(flags(field("height")), p.height, field("height").help)->capture_default_str();
  cmd->add_option(flags(field("clip_skip")), p.clip_skip, field("clip_skip").help)->capture_default_str();
  cmd->add_option(flags(field("init_image")), p.init_image, field("init_image").help);
  cmd->add_option(flags(field("strength")), p.strength, field("strength").help)->capture_default_str();
  cmd->add_option(flags(field("mask")), p.mask, field("mask").help);
  cmd->add_option(flags(field("mask_blur")), p.mask_blur, field("mask_blur").help)->capture_default_str();
  cmd->add_flag(flags(field("invert_mask")), p.invert_mask, field("invert_mask").help);
  cmd->add_flag(flags(field("inpaint_full_res")), p.inpaint_full_res, field("inpaint_full_res").help);
  cmd->add_option(flags(field("inpaint_full_res_padding")), p.inpaint_full_res_padding, field("inpaint_full_res_padding").help)->capture_default_str();
  cmd->add_option(flags(field("resize_mode")), p.resize_mode, field("resize_mode").help)->capture_default_str();
  cmd->add_option(flags(field("paste_back")), p.paste_back, field("paste_back").help)->capture_default_str();
  cmd->add_option(flags(field("vae_tiling")), p.vae_tiling, field("vae_tiling").help)->capture_default_str();
  cmd->add_option(flags(field("batch_size")), p.batch_size, field("batch_size").help)->capture_default_str();
  for (const char* name : {"prompt_2", "negative_prompt_2", "original_size", "target_size", "crop_coords",
                           "negative_original_size", "negative_target_size", "negative_crop_coords", "refiner", "vae",
                           "preview_vae", "prompt_3", "negative_prompt_3", "skip_layers"})
    cmd->add_option(flags(field(name)), *params_string_field(p, name), field(name).help);
  for (const char* name : {"guidance", "skip_layer_scale", "skip_layer_start", "skip_layer_stop"})
    cmd->add_option(flags(field(name)), *params_float_field(p, name), field(name).help)->capture_default_str();
  cmd->add_option(flags(field("max_sequence_length")), p.max_sequence_length, field("max_sequence_length").help)->capture_default_str();
  cmd->add_option(flags(field("frames")), p.frames, field("frames").help)->capture_default_str();
  cmd->add_option(flags(field("fps")), p.fps, field("fps").help)->capture_default_str();
  cmd->add_flag(flags(field("strict")), p.strict, field("strict").help);
  cmd->add_option(flags(field("aesthetic_score")), p.aesthetic_score, field("aesthetic_score").help)->capture_default_str();
  cmd->add_option(flags(field("negative_aesthetic_score")), p.negative_aesthetic_score, field("negative_aesthetic_score").help)->capture_default_str();
  cmd->add_option(flags(field("refiner_switch")), p.refiner_switch, field("refiner_switch").help)->capture_default_str();
  cmd->add_option(flags(field("preview")), p.preview, field("preview").help)->capture_default_str()
      ->check(CLI::IsMember({"auto", "latent2rgb", "taesd", "none"}));
  cmd->add_option(flags(field("preview_every")), p.preview_every, field("preview_every").help)->capture_default_str();
  cmd->add_option("--preview-path", opts->preview_path, "write each preview to this image file (replaced atomically; default with --preview-every: preview.png beside the output)");
  cmd->add_option(flags(field("prompt_syntax")), p.prompt_syntax, field("prompt_syntax").help)->capture_default_str()
      ->check(CLI::IsMember({"diffusers", "a1111"}));
  add_component_flags(cmd, &opts->components, false);
  cmd->add_option("-o,--output", opts->output, "output file: images .png, .jpg, .webp; videos .mp4 (H.264), .webm (VP9), .webp (animated), .gif (default output.mp4 for video models); batches add -0, -1, ...")->capture_default_str();
  cmd->add_option("--output-frames", opts->output_frames, "video models: also write every frame as DIR/frame_0000.png, ... (only these when -o is not given)");
  cmd->add_option("-t,--threads", opts->threads, "CPU threads (0 = all cores)")->capture_default_str();
  cmd->add_option("--tokenizer", opts->tokenizer, "tokenizer folder for single-file checkpoints");
  cmd->add_option("--unet", opts->unet_file,
                  "a UNet-only file (GGUF or .safetensors, e.g. stable-diffusion.cpp / city96 quantised UNets) that replaces the model's UNet");
  cmd->add_option("--quant-compute", opts->quant_compute,
                  "GGUF block-quantised linears: native (computed from the blocks, int8 activations: fast, small) or dequant (exact float32 copies: diffusers parity)")
      ->check(CLI::IsMember({"native", "dequant"}))->capture_default_str();
  cmd->add_flag("-q,--quiet", opts->quiet, "print nothing but errors");
  cmd->add_flag("--progress", opts->progress, "show progress even when stderr is not a terminal");
  cmd->add_option("--precision", opts->precision,
                  "auto (bf16 for models of 500 MB+ on CPUs with AVX512_BF16, else fp32; $VG_PRECISION overrides), fp32 (matches diffusers) or bf16")
      ->capture_default_str()->check(CLI::IsMember({"auto", "fp32", "bf16"}));
  cmd->add_option("--device", opts->device, "auto (cuda when an engine supports it, else cpu), cpu or cuda")
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}))->capture_default_str();
  cmd->add_flag("--allow-download", opts->allow_download, "fetch an org/name model missing from the Hugging Face cache (never implicit)");
  cmd->add_option("--artifact-dir", opts->artifact_dir, "also keep each image in this content-addressed artifact store (with a JSON sidecar of everything that made it)");
  cmd->add_option("--log-format", opts->log_format, "the summary line on stderr: text ([GEN] key=value) or json")
      ->check(CLI::IsMember({"text", "json"}))->capture_default_str();
  cmd->callback([opts, cmd] {
    // the fields given on the command line: presets never override them
    for (const auto& f : param_fields()) {
      const std::string flag = f.flag;
      if (cmd->get_option_no_throw(flag) && cmd->get_option_no_throw(flag)->count() > 0) opts->params.set_fields.push_back(f.name);
    }
    opts->log_format_given = cmd->get_option("--log-format")->count() > 0;
    opts->output_given = cmd->get_option("--output")->count() > 0;
    for (const auto& l : opts->loras) opts->params.loras += (opts->params.loras.empty() ? "" : ",") + l;
    run_generate(*opts);
  });
}

}  // namespace vg::cli
