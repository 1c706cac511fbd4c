// vg::Engine: the public entry point. Converts internal exceptions to
// vg::Error at this boundary.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <list>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <cmath>
#include <random>

#include "backend/cpu/bf16.h"
#include "backend/cpu/dnnl_context.h"
#include "backend/cpu/ops.h"
#include "core/error.h"
#include "io/image_io.h"
#include "io/hf_cache.h"
#include "registry/presets.h"
#include "io/image_decode.h"
#include "lora/lora_manager.h"
#include "pipelines/denoise.h"
#include "pipelines/img2img.h"
#include "pipelines/sd_model.h"
#include "visiongen/visiongen.h"

namespace vg {

struct Engine::Impl {
  std::unique_ptr<SdModel> model;
  std::string hash;
  bool hashed = false;
  double load_s = 0;
  bool keep_text_encoder = false;
  std::unique_ptr<LoraManager> loras;
  // Recent prompt embeddings (token ids + clip_skip + LoRA state -> [1,T,C]):
  // repeated prompts (new seeds, the negative prompt) skip the text encoder,
  // which matters when its weights are released between prompts.
  std::list<std::pair<std::tuple<std::vector<int32_t>, int, std::string>, Tensor>> embeddings;

  Tensor encode(const std::string& text, int clip_skip) {
    auto key = std::make_tuple(model->tokenizer->encode_padded(text), clip_skip, loras ? loras->signature() : "");
    for (auto it = embeddings.begin(); it != embeddings.end(); ++it)
      if (it->first == key) {
        embeddings.splice(embeddings.begin(), embeddings, it);
        return it->second.clone();  // callers may work in place
      }
    Tensor e = model->text_encoder->encode({std::get<0>(key)}, clip_skip);
    Tensor kept = Tensor::unpooled(e.shape());  // long-lived: outside the step pool
    std::copy_n(e.data(), e.numel(), kept.data());
    embeddings.emplace_front(std::move(key), kept);
    if (embeddings.size() > 16) embeddings.pop_back();
    return e;
  }
};

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

Image to_image(const Tensor& nhwc, int64_t index) {
  const int64_t h = nhwc.dim(1), w = nhwc.dim(2);
  Image img;
  img.width = static_cast<int>(w);
  img.height = static_cast<int>(h);
  img.pixels.resize(static_cast<size_t>(w * h * 3));
  const float* src = nhwc.data() + index * h * w * 3;
  for (int64_t i = 0; i < h * w * 3; ++i) {
    // diffusers: clamp(x/2+0.5, 0, 1) * 255, rounded half-to-even
    float v = std::clamp(src[i] / 2.0f + 0.5f, 0.0f, 1.0f);
    img.pixels[i] = static_cast<uint8_t>(std::nearbyint(v * 255.0f));
  }
  return img;
}

// Width/height with 0 meaning the model's native size.
std::pair<int, int> resolved_size(const SdModel& m, const GenerateParams& p) {
  return {p.width ? p.width : m.info.default_width, p.height ? p.height : m.info.default_height};
}

// Memory the kernel can give without swapping (MemAvailable), else the
// physical total.
double available_memory_bytes() {
  if (FILE* f = std::fopen("/proc/meminfo", "r")) {
    char line[256];
    while (std::fgets(line, sizeof line, f)) {
      long long kb = 0;
      if (std::sscanf(line, "MemAvailable: %lld kB", &kb) == 1) {
        std::fclose(f);
        return static_cast<double>(kb) * 1024.0;
      }
    }
    std::fclose(f);
  }
  return static_cast<double>(sysconf(_SC_PHYS_PAGES)) * static_cast<double>(sysconf(_SC_PAGE_SIZE));
}

std::string format_gb(double bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", bytes / 1e9);
  return buf;
}

Status check_model_params(const SdModel& m, const GenerateParams& p, int w, int h) {
  const int mult = m.info.size_multiple;
  if (w % mult || h % mult)
    return Error{ErrorCode::kInvalidArgument,
                 "width and height must be multiples of " + std::to_string(mult) + " for this model (got " +
                     std::to_string(w) + "x" + std::to_string(h) + "); try " +
                     std::to_string((w + mult - 1) / mult * mult) + "x" + std::to_string((h + mult - 1) / mult * mult)};
  if (p.clip_skip > m.text_encoder->config().num_layers)
    return Error{ErrorCode::kInvalidArgument, "clip_skip " + std::to_string(p.clip_skip) +
                                                  " is larger than the text encoder's " +
                                                  std::to_string(m.text_encoder->config().num_layers) + " layers"};
  // Working memory before running, from the model's widths. Denoising and
  // decoding never overlap (the step pool is emptied in between), so the
  // need is the larger of the two. Factors measured on SD 1.5 (fp32, 512x512:
  // UNet ~0.46 GiB for the CFG pair, whole-image VAE decode ~0.6 GiB) plus
  // about 20 % headroom; bf16 keeps float32 between layers, so the same.
  const int64_t mult_l = m.info.vae_scale;
  const double rows = p.cfg_scale > 1.0f ? 2.0 : 1.0;
  const double c_unet = static_cast<double>(m.unet->config().block_out_channels.front());
  const double c_vae = static_cast<double>(m.vae->config().block_out_channels.front());
  auto need_for = [&](double ww, double hh) {
    const double px = ww * hh, latent_px = px / (mult_l * mult_l);
    const double unet = rows * latent_px * c_unet * 4 * 56;
    const bool tiled = p.vae_tiling == "on" || (p.vae_tiling == "auto" && latent_px > 96.0 * 96.0);
    const double vae_px = tiled ? std::min(px, 512.0 * 512.0) : px;  // one 512-pixel tile at a time
    const double vae = vae_px * c_vae * 4 * 6 + (tiled ? px * 3 * 4 * 3 : 0);  // + image, tile rows, blend
    return std::max(unet, vae);
  };
  const double need = need_for(w, h);
  double avail = available_memory_bytes();
  // VG_MEMORY_LIMIT_BYTES: a smaller budget than the machine (shared hosts, containers)
  if (const char* lim = std::getenv("VG_MEMORY_LIMIT_BYTES"); lim && std::atof(lim) > 0) avail = std::min(avail, std::atof(lim));
  if (avail > 0 && need > avail) {
    int side = (std::min(w, h) / mult) * mult;
    while (side > mult && need_for(side, side) > avail) side -= mult;
    return Error{ErrorCode::kOutOfMemory, "a " + std::to_string(w) + "x" + std::to_string(h) + " image needs about " +
                                              format_gb(need) + " GB of working memory and " + format_gb(avail) +
                                              " GB are available; the largest square size that fits is " +
                                              std::to_string(side) + "x" + std::to_string(side) +
                                              (p.vae_tiling == "off" ? " (or use --vae-tiling auto)" : "")};
  }
  return Status();
}

// A cheap picture of UNet-space latents: SD's approximate latent->RGB
// projection for 4 channels (grey mean otherwise), upsampled to pixels.
Image latent_preview(const Tensor& lat, int scale) {
  static const float kRgb[4][3] = {{0.3512f, 0.2297f, 0.3227f}, {0.3250f, 0.4974f, 0.2350f},
                                   {-0.2829f, 0.1762f, 0.2721f}, {-0.2120f, -0.2616f, -0.7177f}};
  const int64_t h = lat.dim(1), w = lat.dim(2), c = lat.dim(3);
  Image img;
  img.width = static_cast<int>(w * scale);
  img.height = static_cast<int>(h * scale);
  img.pixels.resize(static_cast<size_t>(img.width) * img.height * 3);
  for (int y = 0; y < img.height; ++y)
    for (int x = 0; x < img.width; ++x) {
      const float* v = lat.data() + ((y / scale) * w + (x / scale)) * c;
      for (int k = 0; k < 3; ++k) {
        float acc = 0;
        for (int64_t ch = 0; ch < c; ++ch) acc += c == 4 ? v[ch] * kRgb[ch][k] : v[ch] / static_cast<float>(c);
        img.pixels[(static_cast<size_t>(y) * img.width + x) * 3 + k] =
            static_cast<uint8_t>(std::clamp((acc + 1.0f) * 127.5f, 0.0f, 255.0f));
      }
    }
  return img;
}

bool report_step(const ProgressCallback& cb, const GenerateParams& p, const SdModel& m, int i, int n, const Tensor& lat,
                 double elapsed) {
  if (!cb) return true;
  Progress pr{"denoise", i, n, elapsed};
  Image preview;
  if (p.preview_every > 0 && (i % p.preview_every == 0 || i == n)) {
    preview = latent_preview(lat, m.info.vae_scale);
    pr.preview = &preview;
  }
  return cb(pr);
}

SamplerOptions sampler_options(const GenerateParams& p) {
  SamplerOptions o;
  if (p.eta >= 0) o.eta = p.eta;
  o.s_noise = p.s_noise;
  o.s_churn = p.s_churn;
  return o;
}

}  // namespace

Engine::Engine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Engine::~Engine() = default;

std::string resolve_precision(const std::string& p, double model_bytes) {
  if (p == "fp32" || p == "bf16") return p;
  if (p != "auto" && !p.empty()) return "";
  if (const char* env = std::getenv("VG_PRECISION"); env && *env) {
    const std::string e = env;
    return e == "fp32" || e == "bf16" ? e : "";
  }
  if (model_bytes >= 0 && model_bytes < 5e8) return "fp32";
  return cpu_has_native_bf16() ? "bf16" : "fp32";
}

namespace {
// Bytes of weights on disk: the file, or every .safetensors under the folder.
double weight_bytes(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_regular_file(path, ec)) return static_cast<double>(std::filesystem::file_size(path, ec));
  double total = 0;
  for (const auto& f : std::filesystem::recursive_directory_iterator(path, ec))
    if (f.path().extension() == ".safetensors") total += static_cast<double>(f.file_size(ec));
  return total;
}
}  // namespace

Result<std::unique_ptr<Engine>> Engine::load(const std::string& path, const LoadOptions& opts) {
  return guard([&]() -> std::unique_ptr<Engine> {
    set_num_threads(opts.threads);
    auto t0 = Clock::now();
    auto impl = std::make_unique<Impl>();
    if (path.size() > 5 && path.compare(path.size() - 5, 5, ".gguf") == 0)
      fail(ErrorCode::kModelNotConverted, "'" + path + "' is a GGUF file, which this engine does not read yet; use the model's .safetensors release");
    const std::string resolved = resolve_model_reference(path);
    const std::string precision = resolve_precision(opts.precision, opts.precision == "auto" ? weight_bytes(resolved) : -1);
    if (precision.empty())
      fail(ErrorCode::kInvalidArgument, "precision '" + opts.precision + "' is unknown; use auto, fp32 or bf16");
    if (precision == "bf16" && !cpu_can_bf16())
      fail(ErrorCode::kCapabilityNotSupported, "precision bf16 needs a CPU with AVX-512 (this one has none); use --precision fp32");
    impl->model = load_sd_model(resolved, opts.tokenizer_dir, precision == "bf16");
    impl->model->info.precision = precision;
    impl->keep_text_encoder = opts.keep_text_encoder;
    {
      SdModel& m = *impl->model;
      impl->loras = std::make_unique<LoraManager>(
          m.info.family, std::vector<LoraComponent>{{"unet", m.unet_layers, m.unet_sgm_name},
                                                    {"text_encoder", m.text_encoder_layers, nullptr}});
      impl->loras->set_dirs(opts.lora_dirs);
    }
    impl->load_s = seconds_since(t0);
    return std::unique_ptr<Engine>(new Engine(std::move(impl)));
  });
}

const ModelInfo& Engine::info() const { return impl_->model->info; }

namespace {

// Init image and mask from ImageInputs, else from the paths in the params.
struct LoadedImages {
  Image init, mask;
  const Image* pi = nullptr;
  const Image* pm = nullptr;
};

LoadedImages load_images(const GenerateParams& p, const ImageInputs& in) {
  LoadedImages l;
  l.pi = in.init_image;
  if (!l.pi && !p.init_image.empty()) {
    l.init = read_image_file(p.init_image);
    l.pi = &l.init;
  }
  l.pm = in.mask;
  if (!l.pm && !p.mask.empty()) {
    l.mask = read_image_file(p.mask);
    l.pm = &l.mask;
  }
  if (l.pm && !l.pi) fail(ErrorCode::kInvalidArgument, "a mask needs an init image");
  for (const Image* im : {l.pi, l.pm})
    if (im && (im->width <= 0 || im->height <= 0 || im->pixels.size() != static_cast<size_t>(im->width) * im->height * im->channels))
      fail(ErrorCode::kInvalidArgument, "an input image's pixel buffer does not match its size");
  return l;
}

}  // namespace

Status Engine::validate(const GenerateParams& p) const { return validate_with(p, ImageInputs{}); }

Status Engine::validate_with(const GenerateParams& p, const ImageInputs& images) const {
  Status s = validate_params(p);
  if (!s) return s;
  const auto& m = *impl_->model;
  auto sized = guard([&] {
    LoadedImages l = load_images(p, images);
    if (l.pi && !m.vae->has_encoder())
      fail(ErrorCode::kMissingComponent, "this model's VAE has no encoder weights; image-to-image needs a full VAE");
    return l.pi ? edit_size(p, *l.pi, m.info.size_multiple) : resolved_size(m, p);
  });
  if (!sized) return sized.error();
  const auto [w, h] = *sized;
  auto r = guard([&] {
    auto choice = resolve_sampler(p.sampler, p.scheduler, m.scheduler, sampler_options(p));
    make_rng(p.rng, 0);
    // Building the schedule catches step counts a sampler cannot do (LCM > 50).
    make_sampler(choice, m.scheduler, sampler_options(p))->set_timesteps(p.steps);
    return 0;
  });
  if (!r) return r.error();
  return check_model_params(m, p, w, h);
}

Result<GenerateResult> Engine::generate(const GenerateParams& p, const ProgressCallback& cb) {
  return generate(p, ImageInputs{}, cb);
}

Result<GenerateResult> Engine::generate(const GenerateParams& p_in, const ImageInputs& images, const ProgressCallback& cb) {
  // Presets fill what the caller left out (never what it set).
  GenerateParams p = p_in;
  PresetReport preset;
  if (!p.set_fields.empty() || p.mode != "normal") {
    const std::string family = impl_->model->info.family == "sd2" ? "stable-diffusion-2-x" : "stable-diffusion-1-x";
    const std::string task = p.task != "auto" ? p.task : p.init_image.empty() && !images.init_image ? "text_to_image"
                                                        : (p.mask.empty() && !images.mask ? "image_to_image" : "inpaint");
    auto r = guard([&] { return apply_preset(family, p.mode, task, {p.set_fields.begin(), p.set_fields.end()}, &p); });
    if (!r) return r.error();
    preset = *r;
  }
  Status st = validate_with(p, images);
  if (!st) return st.error();
  return guard([&]() -> GenerateResult {
    SdModel& m = *impl_->model;
    GenerateResult res;
    res.timings.load_s = impl_->load_s;
    res.applied_preset_patch = preset.applied_patch.dump();
    res.mode_ignored_reason = preset.mode_ignored_reason;
    if (!preset.mode_ignored_reason.empty()) res.warnings.push_back(preset.mode_ignored_reason);
    const LoadedImages li = load_images(p, images);
    const auto [w, h] = li.pi ? edit_size(p, *li.pi, m.info.size_multiple) : resolved_size(m, p);
    uint64_t seed = p.seed >= 0 ? static_cast<uint64_t>(p.seed) : (std::random_device{}() & 0xffffffffu);
    auto report = [&](const char* stage, int step, int total, Clock::time_point t0) {
      if (cb && !cb(Progress{stage, step, total, seconds_since(t0)}))
        fail(ErrorCode::kCancelled, "generation was cancelled");
    };
    // Text: diffusers applies clip_skip to the prompt only.
    auto t0 = Clock::now();
    report("text_encode", 0, 1, t0);
    const bool cfg = p.cfg_scale > 1.0f;
    // LoRAs: --lora plus the prompt's <lora:name:w> tags (removed from the text
    // encoded, kept in the infotext as A1111 does).
    std::vector<LoraSpec> lora_specs = parse_lora_list(p.loras);
    const std::string prompt = extract_prompt_loras(p.prompt, &lora_specs);
    const LoraApplied lora = impl_->loras->set(lora_specs);
    res.warnings.insert(res.warnings.end(), lora.warnings.begin(), lora.warnings.end());
    std::string lora_info;
    for (const auto& [name, hash] : lora.hashes) lora_info += (lora_info.empty() ? "" : ", ") + name + ": " + hash;
    auto infotext = [&](uint64_t s, int iw, int ih) {
      std::string t = format_infotext(p, s, iw, ih, m.info.name, impl_->hash);
      const std::string tail = ", Version: ";
      const auto at = t.rfind(tail);
      if (!lora_info.empty() && at != std::string::npos) t.insert(at, ", Lora hashes: \"" + lora_info + "\"");
      return t;
    };
    Tensor cond = impl_->encode(prompt, p.clip_skip);
    Tensor uncond = cfg ? impl_->encode(p.negative_prompt, 1) : Tensor();
    if (!impl_->keep_text_encoder) m.text_encoder->release_weights();  // after both prompts, not per prompt
    res.timings.text_encode_s = seconds_since(t0);
    report("text_encode", 1, 1, t0);
    const int64_t lh = h / m.info.vae_scale, lw = w / m.info.vae_scale;
    const int64_t lc = m.vae->config().latent_channels;
    if (!impl_->hashed) {
      impl_->hash = model_hash(m.hash_source);
      impl_->hashed = true;
    }
    const SamplerOptions sopt = sampler_options(p);
    const SamplerChoice choice = resolve_sampler(p.sampler, p.scheduler, m.scheduler, sopt);
    res.warnings.insert(res.warnings.end(), choice.warnings.begin(), choice.warnings.end());
    res.sampling = {p.sampler, choice.sampler, p.scheduler, choice.schedule, canonical_rng_name(p.rng)};
    for (int b = 0; b < p.batch_size; ++b) {
      const uint64_t s = seed + static_cast<uint64_t>(b);
      auto sampler = make_sampler(choice, m.scheduler, sopt);
      sampler->set_timesteps(p.steps);
      res.sampling.scheduler_effective = sampler->schedule();
      auto rng_ptr = make_rng(p.rng, s);
      Rng& rng = *rng_ptr;
      if (li.pi) {
        t0 = Clock::now();
        DenoiseHooks hooks;
        hooks.on_step = [&](int i, int n, const Tensor& lat) { return report_step(cb, p, m, i, n, lat, seconds_since(t0)); };
        res.images.push_back(run_edit_job(m, p, EditJob{li.pi, li.pm, w, h}, *sampler, cond, uncond, rng, hooks, &res.warnings));
        res.timings.denoise_s += seconds_since(t0);
        res.seeds.push_back(s);
        res.infotext.push_back(infotext(s, res.images.back().width, res.images.back().height));
        continue;
      }
      Tensor noise = rng.randn_nhwc({1, lh, lw, lc});
      scale_inplace(noise, sampler->init_noise_sigma());
      t0 = Clock::now();
      DenoiseHooks hooks;
      hooks.on_step = [&](int i, int n, const Tensor& lat) { return report_step(cb, p, m, i, n, lat, seconds_since(t0)); };
      Tensor lat = denoise(*m.unet, *sampler, cond, uncond, noise, p.cfg_scale, rng, hooks);
      res.timings.denoise_s += seconds_since(t0);
      t0 = Clock::now();
      report("decode", 0, 1, t0);
      scale_inplace(lat, 1.0f / m.vae->config().scaling_factor);
      tensor_pool_trim();  // the UNet's cached buffers are not what the VAE needs: peak = max, not sum
      Tensor img = m.vae->decode_with(lat, p.vae_tiling);
      res.timings.decode_s += seconds_since(t0);
      report("decode", 1, 1, t0);
      res.images.push_back(to_image(img, 0));
      res.seeds.push_back(s);
      res.infotext.push_back(infotext(s, w, h));
    }
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

void set_threads(int threads) { set_num_threads(threads); }

const char* version() { return "0.1.0"; }

}  // namespace vg
