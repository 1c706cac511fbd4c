// vg::Engine: the public entry point. Loads a model, hands each request to
// its family's engine (family_engine.h) and converts internal exceptions to
// vg::Error at this boundary.
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>

#include "backend/cpu/bf16.h"
#include "backend/cpu/dnnl_context.h"
#include "backend/cpu/precision_probe.h"
#include "io/tensor_file.h"
#include "core/error.h"
#include "core/memory.h"
#include "io/hf_cache.h"
#include "io/weights.h"
#include "io/image_io.h"
#include "io/video_io.h"
#include "pipelines/family_engine.h"
#include "pipelines/flux_model.h"
#include "pipelines/sd3_model.h"
#include "pipelines/qwenimage_model.h"
#include "pipelines/sd_model.h"
#include "pipelines/wan_model.h"
#include "pipelines/zimage_model.h"
#include "registry/presets.h"
#include "visiongen/visiongen.h"

namespace vg {

struct Engine::Impl {
  std::unique_ptr<FamilyEngine> family;
  double load_s = 0, load_peak_rss_mb = 0;
};

namespace {
using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }
}  // namespace

Engine::Engine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Engine::~Engine() = default;

namespace {
// fp32/bf16 and how it was chosen ("" when `p` is unknown).
std::pair<std::string, std::string> precision_with_source(const std::string& p, double model_bytes, const std::string& arch) {
  if (p == "fp32" || p == "bf16") return {p, "requested"};
  if (p != "auto" && !p.empty()) return {"", ""};
  if (const char* env = std::getenv("VG_PRECISION"); env && *env) {
    const std::string e = env;
    return {e == "fp32" || e == "bf16" ? e : "", "env"};
  }
  if (model_bytes >= 0 && model_bytes < 5e8) return {"fp32", "small model"};
  if (!cpu_can_bf16()) return {"fp32", "no bf16 on this CPU"};
  const PrecisionProbe probe = choose_precision(arch);
  return {probe.choice, probe.cached ? "cached measurement" : "measured"};
}

// The diffusion-transformer family of a model ("flux", "sd3") or "" for the
// UNet families, from -m or else the --transformer file.
std::string dit_family(const std::string& path, const LoadOptions& opts) {
  const std::string f = dit_family_of(path);
  return f.empty() ? dit_family_of(opts.transformer_file) : f;
}

// "sdxl", "sd" or "dit" from the model's files without loading it (for the probe).
std::string probe_arch(const std::string& path, const std::string& dit) {
  std::error_code ec;
  if (!dit.empty()) return "dit";
  if (std::filesystem::is_directory(path, ec))
    return std::filesystem::exists(std::filesystem::path(path) / "text_encoder_2", ec) ? "sdxl" : "sd";
  try {
    auto f = open_tensor_file(path);
    for (const auto& [name, info] : f->tensors())
      if (name.rfind("conditioner.embedders.1.", 0) == 0) return "sdxl";
  } catch (const std::exception&) {
    // unreadable: the loader reports it properly
  }
  return "sd";
}
}  // namespace

std::string resolve_precision(const std::string& p, double model_bytes, const std::string& arch) {
  return precision_with_source(p, model_bytes, arch).first;
}

namespace {
// Bytes of weights on disk (one variant of each file; see weight_files).
double weight_bytes(const std::string& path) {
  std::error_code ec;
  double total = 0;
  for (const std::string& f : weight_files(path)) total += static_cast<double>(std::filesystem::file_size(f, ec));
  return total;
}
}  // namespace

Result<std::unique_ptr<Engine>> Engine::load(const std::string& path, const LoadOptions& opts) {
  return guard([&]() -> std::unique_ptr<Engine> {
    set_num_threads(opts.threads);
    auto t0 = Clock::now();
    reset_peak_rss();
    auto impl = std::make_unique<Impl>();
    const std::string resolved = resolve_model_reference(path);
    const bool is_auto = opts.precision == "auto" || opts.precision.empty();
    const std::string dit = dit_family(resolved, opts);
    const auto chosen =
        precision_with_source(opts.precision, is_auto ? weight_bytes(resolved) : -1, is_auto ? probe_arch(resolved, dit) : "sd");
    const std::string precision = chosen.first, source = chosen.second;
    if (precision.empty())
      fail(ErrorCode::kInvalidArgument, "precision '" + opts.precision + "' is unknown; use auto, fp32 or bf16");
    if (precision == "bf16" && !cpu_can_bf16())
      fail(ErrorCode::kCapabilityNotSupported, "precision bf16 needs a CPU with AVX-512 (this one has none); use --precision fp32");
    if (opts.quant_compute != "native" && opts.quant_compute != "dequant")
      fail(ErrorCode::kInvalidArgument, "quant_compute '" + opts.quant_compute + "' is unknown; use native or dequant");
    if (opts.lora_mode != "merge" && opts.lora_mode != "runtime")
      fail(ErrorCode::kInvalidArgument, "lora_mode '" + opts.lora_mode + "' is unknown; use merge or runtime");
    check_weights_fit(resolved, precision, opts.quant_compute == "native");
    ScopedDequantizeBlocks dequant_blocks(opts.quant_compute == "dequant");
    auto stamp = [&](ModelInfo& info) {
      info.precision = precision;
      info.precision_source = source;
    };
    if (dit == "flux") {
      auto m = load_flux_model(resolved, opts, precision == "bf16");
      stamp(m->parts.info);
      impl->family = make_flux_engine(std::move(m), opts);
    } else if (dit == "sd3") {
      auto m = load_sd3_model(resolved, opts, precision == "bf16");
      stamp(m->parts.info);
      impl->family = make_sd3_engine(std::move(m), opts);
    } else if (dit == "qwenimage") {
      auto m = load_qwenimage_model(resolved, opts, precision == "bf16");
      stamp(m->parts.info);
      impl->family = make_qwenimage_engine(std::move(m), opts);
    } else if (dit == "wan") {
      auto m = load_wan_model(resolved, opts, precision == "bf16");
      stamp(m->info);
      impl->family = make_wan_engine(std::move(m), opts);
    } else if (dit == "zimage") {
      auto m = load_zimage_model(resolved, opts, precision == "bf16");
      stamp(m->parts.info);
      impl->family = make_zimage_engine(std::move(m), opts);
    } else {
      auto model = load_sd_model(resolved, opts.tokenizer_dir, precision == "bf16", opts.config_dir);
      if (!opts.unet_file.empty()) load_unet_file(*model, opts.unet_file, precision == "bf16");
      stamp(model->info);
      impl->family = model->info.family == "sdxl" ? make_sdxl_engine(std::move(model), opts)
                                                 : make_sd_engine(std::move(model), opts);
    }
    impl->load_s = seconds_since(t0);
    impl->load_peak_rss_mb = peak_rss_bytes() / 1048576.0;
    return std::unique_ptr<Engine>(new Engine(std::move(impl)));
  });
}

const ModelInfo& Engine::info() const { return impl_->family->info(); }

std::string Engine::preset_family() const { return impl_->family->preset_family(); }

Status Engine::validate(const GenerateParams& p) const { return validate_with(p, ImageInputs{}); }

Status Engine::validate_with(const GenerateParams& p, const ImageInputs& images) const {
  Status s = validate_params(p);
  if (!s) return s;
  const ModelInfo& mi = impl_->family->info();
  if ((p.task == "text_to_video" || p.task == "image_to_video") && !mi.video)
    return Error{ErrorCode::kCapabilityNotSupported, "task " + p.task + " needs a video model (Wan 2.2 TI2V-5B); " +
                                                         mi.name + " (" + mi.family + ") makes images"};
  return impl_->family->validate(p, images);
}

Result<GenerateResult> Engine::generate(const GenerateParams& p, const ProgressCallback& cb) {
  return generate(p, ImageInputs{}, cb);
}

Result<GenerateResult> Engine::generate(const GenerateParams& p_in, const ImageInputs& images, const ProgressCallback& cb) {
  // Presets fill what the caller left out (never what it set).
  GenerateParams p = p_in;
  PresetReport preset;
  if (!p.set_fields.empty() || p.mode != "normal") {
    const bool has_image = !p.init_image.empty() || images.init_image;
    const std::string task = p.task != "auto"                 ? p.task
                             : impl_->family->info().video   ? (has_image ? "image_to_video" : "text_to_video")
                             : !has_image                    ? "text_to_image"
                             : p.mask.empty() && !images.mask ? "image_to_image"
                                                              : "inpaint";
    auto r = guard([&] {
      return apply_preset(impl_->family->preset_family(), p.mode, task, {p.set_fields.begin(), p.set_fields.end()}, &p);
    });
    if (!r) return r.error();
    preset = *r;
  }
  Status st = validate_with(p, images);
  if (!st) return st.error();
  return guard([&]() -> GenerateResult {
    GenerateResult res = impl_->family->generate(p, images, cb);
    res.timings.load_s = impl_->load_s;
    res.timings.load_peak_rss_mb = impl_->load_peak_rss_mb;
    res.applied_preset_patch = preset.applied_patch.dump();
    res.mode_ignored_reason = preset.mode_ignored_reason;
    if (!preset.mode_ignored_reason.empty()) res.warnings.insert(res.warnings.begin(), preset.mode_ignored_reason);
    // the same note can come from every image of a batch
    std::vector<std::string> uniq;
    for (auto& wmsg : res.warnings)
      if (std::find(uniq.begin(), uniq.end(), wmsg) == uniq.end()) uniq.push_back(wmsg);
    res.warnings = uniq;
    return res;
  });
}

Status save_image(const Image& image, const std::string& path, const std::string& infotext) {
  auto r = guard([&] {
    write_image_file(image, path, infotext);
    return 0;
  });
  if (!r) return r.error();
  return Status();
}

Status save_video(const Video& video, const std::string& path, const std::string& infotext) {
  auto r = guard([&] {
    write_video(path, video, infotext);
    return 0;
  });
  return r ? Status() : Status(r.error());
}

Status save_video_frames(const Video& video, const std::string& dir, const std::string& infotext) {
  auto r = guard([&] {
    write_video_frames(dir, video, infotext);
    return 0;
  });
  return r ? Status() : Status(r.error());
}

void set_threads(int threads) { set_num_threads(threads); }

const char* version() { return "0.1.0"; }

}  // namespace vg
