// `visiongen bench`: full-size SD1.5 architecture with synthetic weights (no
// download); reports UNet s/step and GFLOP/s against the sgemm peak measured
// in the same run, VAE decode and text-encode times, and peak RSS.
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <nlohmann/json.hpp>
#include <vector>

#include "backend/cpu/bf16.h"
#include "backend/cpu/dnnl_context.h"
#include "backend/cpu/layers.h"
#include "backend/cpu/ops.h"
#include "cli/bench_dit.h"
#include "cli/bench_lora.h"
#include "cli/bench_wan.h"
#include "cli/commands.h"
#include "cli/synth_model.h"
#include "core/error.h"
#include "core/profile.h"
#include "lora/layer_registry.h"
#include "models/autoencoder_kl.h"
#include "models/unet.h"
#include "pipelines/vae_choice.h"
#include "quant/ggml_types.h"
#include "quant/qmatmul.h"
#include "quant/quantize.h"
#include "text/clip_text_model.h"
#include "visiongen/visiongen.h"

namespace vg::cli {

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

double current_rss_gb() {
  long pages = 0, resident = 0;
  if (FILE* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    std::fclose(f);
  }
  return static_cast<double>(resident) * static_cast<double>(sysconf(_SC_PAGESIZE)) / 1073741824.0;
}

double peak_rss_gb() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1048576.0;
}

// Best-of-N sgemm GFLOP/s on n x n x n.
double sgemm_gflops(int64_t n, int reps) {
  std::vector<float> a(n * n, 0.5f), b(n * n, 0.25f), c(n * n);
  double best = 1e30;
  for (int r = 0; r < reps + 1; ++r) {
    auto t = Clock::now();
    sgemm(false, false, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n);
    if (r) best = std::min(best, since(t));
  }
  return 2.0 * n * n * n / best / 1e9;
}

UNetConfig sd15_unet() {
  UNetConfig c;
  c.down_block_types = {"CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"};
  c.up_block_types = {"UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"};
  c.layers_per_block.assign(4, 2);
  c.num_heads.assign(4, 8);
  c.cross_attention_dim.assign(4, 768);
  c.transformer_layers.assign(4, 1);
  return c;
}

// SDXL base 1.0: 3 levels, depths 1/2/10 with 64-wide heads, 2048-wide
// context (CLIP-L + bigG), text_time added conditioning.
UNetConfig sdxl_unet() {
  UNetConfig c;
  c.block_out_channels = {320, 640, 1280};
  c.down_block_types = {"DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"};
  c.up_block_types = {"CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"};
  c.layers_per_block.assign(3, 2);
  c.num_heads = {5, 10, 20};
  c.cross_attention_dim.assign(3, 2048);
  c.transformer_layers = {1, 2, 10};
  c.use_linear_projection = true;
  c.sample_size = 128;
  c.addition_time_embed_dim = 256;
  c.projection_class_embeddings_input_dim = 2816;
  return c;
}

struct BenchOptions {
  std::string arch = "sd15";
  bool quick = false, json = false, profile = false;
  std::vector<int> sizes{256, 512};
  int steps = 3, threads = 0;
  std::string precision = "both";
  int vae_tiled = 0;
  int lora_rank = 0;  // also time merging a synthetic LoRA of this rank into the UNet
  std::string model;  // also time loading this model folder/file (page cache warmed first)
  std::string write_model, tokenizers_from;  // write a synthetic SDXL folder instead of benchmarking
  std::string quant;  // ggml type: UNet with synthetic weights quantised to it vs the same weights in fp32
};

// One precision: builds UNet, VAE decoder and CLIP-L, times them per size.
// Outputs of the first size, to compare precisions (the same synthetic
// weights and inputs in both runs).
struct BenchOutputs {
  Tensor unet, image;
};

double psnr_pm1(const Tensor& a, const Tensor& b) {  // images in [-1, 1], 8-bit scale
  double se = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    const double d = (std::clamp(a.data()[i], -1.0f, 1.0f) - std::clamp(b.data()[i], -1.0f, 1.0f)) * 127.5;
    se += d * d;
  }
  return se == 0 ? 99.0 : 10 * std::log10(255.0 * 255.0 / (se / static_cast<double>(a.numel())));
}

// qtype >= 0: linears quantised to that ggml type (computed natively), UNet only.
nlohmann::json bench_precision(const BenchOptions& o, bool bf16, double peak, BenchOutputs* keep, int qtype = -1) {
  nlohmann::json out;
  const std::string label = qtype >= 0 ? ggml_type_name(qtype) : bf16 ? "bf16" : "fp32";
  out["precision"] = label;
  WeightStore ws;
  ws.make_synthetic(1);
  ws.set_compute_bf16(bf16);
  ws.set_synthetic_quant(qtype);
  const bool unet_only = !o.quant.empty();
  auto t = Clock::now();
  const bool xl = o.arch == "sdxl";
  UNetConfig uc = xl ? sdxl_unet() : sd15_unet();
  std::vector<int> sizes = o.sizes;
  if (o.quick) {  // tiny widths so CI exercises the code path in seconds
    uc.block_out_channels = xl ? std::vector<int64_t>{32, 64, 64} : std::vector<int64_t>{32, 64, 64, 64};
    uc.num_heads.assign(uc.block_out_channels.size(), 2);
    uc.cross_attention_dim.assign(uc.block_out_channels.size(), 64);
    if (xl) uc.transformer_layers = {1, 1, 2}, uc.projection_class_embeddings_input_dim = 64 + 6 * 256;
    sizes = {128};
  }
  std::shared_ptr<LayerRegistry> unet_layers;  // the UNet's patch slots, for --lora-rank
  if (o.lora_rank > 0) ws.set_layer_registry(unet_layers = std::make_shared<LayerRegistry>());
  UNet unet(uc, ws);
  ws.set_layer_registry(nullptr);
  VaeConfig vc;
  if (o.quick) vc.block_out_channels = {32, 32, 64, 64};
  ws.set_synthetic_quant(-1);  // quantised linears: the UNet's (the only part timed with --quant)
  std::optional<AutoencoderKL> vae_box;
  if (!unet_only) vae_box.emplace(vc, ws, false);
  ClipTextConfig tc;
  if (xl) {  // the larger of SDXL's two encoders: OpenCLIP bigG with its projection
    tc.hidden_size = 1280, tc.intermediate_size = 5120, tc.num_heads = 20, tc.num_layers = 32;
    tc.act = Act::kGelu, tc.projection_dim = 1280;
  }
  if (o.quick) tc.hidden_size = 64, tc.intermediate_size = 128, tc.num_heads = 2, tc.num_layers = 2, tc.projection_dim = xl ? 64 : 0;
  std::optional<ClipTextModel> te_box;
  if (!unet_only) te_box.emplace(tc, ws);
  out["build_s"] = since(t);
  out["rss_after_build_gb"] = current_rss_gb();
  std::vector<int32_t> ids(77, 49407);
  ids[0] = 49406;
  if (!unet_only) te_box->encode({ids}, 1);  // warm-up
  t = Clock::now();
  Tensor ctx1 = unet_only ? Tensor::zeros({1, 77, tc.hidden_size}) : te_box->encode({ids}, 1);
  for (int64_t i = 0; unet_only && i < ctx1.numel(); ++i) ctx1.data()[i] = static_cast<float>((i * 37) % 200) / 100.0f - 1.0f;
  out["text_encode_s"] = since(t);
  if (te_box) te_box->release_weights();  // as the pipeline does after encoding (LoadOptions::keep_text_encoder)
  Tensor ctx = concat_batch(ctx1, ctx1);
  AddedCond added;
  if (xl) {  // CLIP-L (768) + bigG (1280) states side by side; pooled bigG and 6 time ids
    ctx = Tensor::zeros({2, 77, uc.cross_attention_dim[0]});
    for (int64_t i = 0; i < ctx.numel(); ++i) ctx.data()[i] = static_cast<float>((i * 31) % 200) / 100.0f - 1.0f;
    const int64_t pooled = uc.projection_class_embeddings_input_dim - 6 * uc.addition_time_embed_dim;
    added.text_embeds = Tensor::zeros({2, pooled});
    added.time_ids = Tensor::zeros({2, 6});
    for (int64_t i = 0; i < 2; ++i)
      for (int k = 0; k < 6; ++k) added.time_ids.data()[i * 6 + k] = k == 2 || k == 3 ? 0.0f : 1024.0f;
  }
  if (o.vae_tiled > 0 && vae_box) {
    AutoencoderKL& vae = *vae_box;  // first, so the growth of peak RSS is the decode's own memory
    tensor_pool_trim();
    const double before = peak_rss_gb();
    const int64_t l = o.vae_tiled / 8;
    Tensor z = Tensor::zeros({1, l, l, 4});
    for (int64_t i = 0; i < z.numel(); ++i) z.data()[i] = static_cast<float>((i * 7919) % 1000) / 500.0f - 1.0f;
    t = Clock::now();
    Tensor img = vae.decode_tiled(z);
    const double secs = since(t);
    const double extra = peak_rss_gb() - before;
    out["vae_tiled_decode"] = {{"size", o.vae_tiled}, {"seconds", secs}, {"extra_peak_rss_gb", extra}};
    if (!o.json)
      std::printf("[%s] VAE tiled decode %dx%d: %.2f s, peak RSS grew by %.2f GB\n", bf16 ? "bf16" : "fp32", o.vae_tiled, o.vae_tiled, secs, extra);
    tensor_pool_trim();
  }
  if (!o.json)
    std::printf("[%s] weights built in %.1f s, RSS %.2f GB; text encode: %.3f s\n", label.c_str(), out["build_s"].get<double>(),
                out["rss_after_build_gb"].get<double>(), out["text_encode_s"].get<double>());
  for (int size : sizes) {
    const int64_t l = size / 8;
    Tensor x = Tensor::zeros({2, l, l, 4});
    for (int64_t i = 0; i < x.numel(); ++i) x.data()[i] = static_cast<float>((i * 7919) % 1000) / 500.0f - 1.0f;
    Tensor first_out = unet.forward(x, {500.0f}, ctx, added);  // warm-up: primitive creation, weight reorders
    double best = 1e30;
    const int runs = o.quick ? 1 : o.steps;
    profile::reset();
    profile::g_enabled = o.profile;
    Tensor plain_out;  // the last timed output, for --lora-rank's unmerge check
    for (int s = 0; s < runs; ++s) {
      t = Clock::now();
      Tensor y = unet.forward(x, {500.0f}, ctx, added);
      best = std::min(best, since(t));
      if (unet_layers && s + 1 == runs) {  // outside the pool/arena the next call reuses
        plain_out = Tensor::unpooled(y.shape());
        std::copy_n(y.data(), y.numel(), plain_out.data());
      }
    }
    profile::g_enabled = false;
    nlohmann::json prof = nlohmann::json::object();
    for (const auto& [k, v] : profile::totals()) prof[k] = v / runs;
    double preview_s = 0;
    if (!xl && !o.quick && !unet_only) {  // --preview taesd: one preview of this size with real TAESD widths
      static const AutoencoderTiny taesd(TinyVaeConfig{}, ws);
      Tensor one = Tensor::from({1, l, l, 4}, x.data());
      VaeChoice::taesd_preview(one, taesd);  // warm-up
      t = Clock::now();
      VaeChoice::taesd_preview(one, taesd);
      preview_s = since(t);
      if (!o.json)
        std::printf("[%s] %dx%d TAESD preview: %.3f s = %.1f %% of a UNet step\n", bf16 ? "bf16" : "fp32", size, size,
                    preview_s, 100.0 * preview_s / best);
    }
    nlohmann::json lora;
    if (unet_layers && size == sizes.front()) {
      lora = bench_lora_merge(unet_layers, o.lora_rank, best, plain_out, [&] { return unet.forward(x, {500.0f}, ctx, added); });
      if (!o.json)
        std::printf("[%s] rank-%d LoRA on %d UNet linears (%.0f MB file): merge %.3f s (set %.3f s + re-materialising %.3f s, "
                    "of which the weights' original source %.3f s); unmerge %.3f s, restores bit-exactly: %s; "
                    "at run time instead: set %.3f s, step +%.1f %%, output vs merged %.1e rel\n",
                    bf16 ? "bf16" : "fp32", o.lora_rank, lora["layers"].get<int>(), lora["file_mb"].get<double>(),
                    lora["merge_s"].get<double>(), lora["set_s"].get<double>(), lora["rematerialize_s"].get<double>(),
                    lora["original_source_s"].get<double>(), lora["unmerge_s"].get<double>(),
                    lora["unmerge_restores_bitexact"].get<bool>() ? "yes" : "NO", lora["runtime_set_s"].get<double>(),
                    100.0 * lora["runtime_step_overhead"].get<double>(), lora["runtime_vs_merged_rel"].get<double>());
    }
    plain_out = Tensor();
    const double rss_unet = peak_rss_gb();
    const double gflop = unet.flops(2, l, l, 77) / 1e9;
    const double gf = gflop / best;
    if (keep && keep->unet.empty()) keep->unet = first_out.clone();
    first_out = Tensor();
    tensor_pool_trim();  // as the pipeline does between denoising and decoding
    if (unet_only) {
      out["sizes"].push_back({{"size", size}, {"unet_s_per_step", best}, {"unet_gflop", gflop}, {"unet_gflops", gf},
                              {"unet_frac_of_sgemm", gf / peak}, {"peak_rss_after_unet_gb", rss_unet}});
      if (!o.json)
        std::printf("[%s] %dx%d batch 2: UNet %.3f s/step, %.0f GFLOP/step, %.1f GFLOP/s = %.0f%% of sgemm; peak RSS %.2f GB\n",
                    label.c_str(), size, size, best, gflop, gf, 100 * gf / peak, rss_unet);
      if (o.profile) out["sizes"].back()["unet_profile_s"] = prof;
      if (!o.json && o.profile)
        for (const auto& [k, v] : prof.items()) std::printf("  UNet %-12s %.3f s/step\n", k.c_str(), v.get<double>());
      continue;
    }
    AutoencoderKL& vae = *vae_box;
    Tensor z({1, l, l, 4});
    for (int64_t i = 0; i < z.numel(); ++i) z.data()[i] = static_cast<float>((i * 104729) % 2000) / 1000.0f - 1.0f;
    vae.decode_with(z, "off");
    profile::reset();
    profile::g_enabled = o.profile;
    t = Clock::now();
    Tensor decoded = vae.decode_with(z, "off");  // as the pipeline decodes 512x512 (no tiling, no pooling)
    const double dec = since(t);
    profile::g_enabled = false;
    if (keep && keep->image.empty()) keep->image = decoded.clone();
    decoded = Tensor();
    nlohmann::json vprof = nlohmann::json::object();
    for (const auto& [k, v] : profile::totals()) vprof[k] = v;
    const double dec_gf = vae.decode_flops(1, l, l) / dec / 1e9;
    if (auto st = vae.decode_arena_stats()) {
      if (!o.json)
        std::printf("[%s] %dx%d VAE decode activations: planned arena %.3f GB (most alive at once %.3f GB), %zu fell back\n",
                    bf16 ? "bf16" : "fp32", size, size, st->arena_bytes / 1073741824.0, st->live_peak_bytes / 1073741824.0, st->missed);
    }
    nlohmann::json r = {{"size", size}, {"unet_s_per_step", best}, {"unet_gflop", gflop},
                        {"unet_gflops", gf}, {"unet_frac_of_sgemm", gf / peak}, {"vae_decode_s", dec},
                        {"vae_decode_gflops", dec_gf}, {"vae_frac_of_sgemm", dec_gf / peak}};
    r["peak_rss_after_unet_gb"] = rss_unet;
    if (preview_s > 0) r["taesd_preview_s"] = preview_s, r["taesd_preview_frac_of_step"] = preview_s / best;
    if (!lora.is_null()) r["lora"] = lora;
    if (auto st = vae.decode_arena_stats()) r["vae_arena_gb"] = st->arena_bytes / 1073741824.0;
    if (auto st = unet.arena_stats()) {  // activation memory planned before the first step
      r["unet_arena_gb"] = st->arena_bytes / 1073741824.0;
      r["unet_live_peak_gb"] = st->live_peak_bytes / 1073741824.0;
      r["unet_arena_missed"] = st->missed;
      if (!o.json)
        std::printf("[%s] %dx%d UNet activations: planned arena %.3f GB (most alive at once %.3f GB); %zu allocations per step, %zu fell back to the pool\n",
                    bf16 ? "bf16" : "fp32", size, size, st->arena_bytes / 1073741824.0, st->live_peak_bytes / 1073741824.0,
                    st->allocations, st->missed);
    }
    r["peak_rss_after_vae_gb"] = peak_rss_gb();
    if (o.profile) r["unet_profile_s"] = prof, r["vae_profile_s"] = vprof;
    out["sizes"].push_back(r);
    if (!o.json)
      std::printf("[%s] %dx%d batch 2: UNet %.3f s/step, %.0f GFLOP/step, %.1f GFLOP/s = %.0f%% of sgemm; "
                  "VAE decode %.3f s (%.0f%% of sgemm); peak RSS %.2f GB after the UNet, %.2f GB after the VAE\n",
                  bf16 ? "bf16" : "fp32", size, size, best, gflop, gf, 100 * gf / peak, dec, 100 * dec_gf / peak, rss_unet, peak_rss_gb());
    if (!o.json && o.profile)
      for (const auto& [k, v] : prof.items()) std::printf("  UNet %-12s %.3f s/step\n", k.c_str(), v.get<double>());
    if (!o.json && o.profile)
      for (const auto& [k, v] : vprof.items()) std::printf("  VAE  %-12s %.3f s\n", k.c_str(), v.get<double>());
  }
  out["peak_rss_gb"] = peak_rss_gb();
  return out;
}

void run_bench(const BenchOptions& o) {
  if (!o.write_model.empty()) {
    if ((o.arch != "sdxl" && o.arch != "zimage-turbo" && o.arch != "wan22-ti2v-5b") || o.tokenizers_from.empty()) {
      set_exit_code(report_error({ErrorCode::kInvalidArgument, "--write-model needs --arch sdxl, zimage-turbo or wan22-ti2v-5b and --tokenizers-from DIR "
                                                               "(a diffusers folder of that family whose tokenizers are copied)"}));
      return;
    }
    try {
      if (o.arch == "zimage-turbo")
        write_synthetic_zimage(o.write_model, o.tokenizers_from, 1);
      else if (o.arch == "wan22-ti2v-5b")
        write_synthetic_wan(o.write_model, o.tokenizers_from, 1);
      else
        write_synthetic_sdxl(o.write_model, o.tokenizers_from, 1);
    } catch (const VgException& e) {
      set_exit_code(report_error(e.to_error()));
    }
    return;
  }
  set_num_threads(o.threads);
  if (!o.model.empty() && !std::filesystem::exists(o.model)) {  // before minutes of benchmarking
    set_exit_code(report_error({ErrorCode::kFileNotFound, "model path '" + o.model + "' does not exist; check the path"}));
    return;
  }
  nlohmann::json out;
  out["threads"] = num_threads();
  const int64_t gemm_n = o.quick ? 512 : 2048;
  const double peak = sgemm_gflops(gemm_n, o.quick ? 2 : 5);
  out["sgemm_gflops"] = peak;
  out["native_bf16"] = cpu_has_native_bf16();
  if (!o.json) std::printf("sgemm %lldx%lld: %.1f GFLOP/s (%d threads)\n", (long long)gemm_n, (long long)gemm_n, peak, num_threads());
  if (!o.quant.empty()) {
    const int qt = ggml_type_from_name(o.quant);
    if (qt < 0 || !can_quantize(qt)) {
      set_exit_code(report_error({ErrorCode::kInvalidArgument, "--quant '" + o.quant + "' is not a type the benchmark can "
                                                               "quantise to; use q8_0, q6_k, q5_k, q4_k, q3_k, q2_k, q5_1, q5_0, q4_1, q4_0 or f16"}));
      return;
    }
    // quantised first: its peak RSS is its own (getrusage's peak only grows)
    BenchOutputs q, f;
    out["runs"].push_back(bench_precision(o, false, peak, &q, qt));
    out["runs"].push_back(bench_precision(o, false, peak, &f));
    double num = 0, den = 0;
    for (int64_t i = 0; i < f.unet.numel(); ++i) {
      const double d = static_cast<double>(q.unet.data()[i]) - f.unet.data()[i];
      num += d * d, den += static_cast<double>(f.unet.data()[i]) * f.unet.data()[i];
    }
    const double rel = std::sqrt(num / std::max(den, 1e-30));
    const double tq = out["runs"][0]["sizes"][0]["unet_s_per_step"], tf = out["runs"][1]["sizes"][0]["unet_s_per_step"];
    out["quant_vs_fp32"] = {{"type", ggml_type_name(qt)}, {"unet_relative_rms", rel}, {"speedup", tf / tq},
                            {"path", qmm_path_name(qmm_choose(qt, 4096, 1280, 1280))}};
    if (o.json) std::printf("%s\n", out.dump(2).c_str());
    else std::printf("%s vs fp32 (first size): UNet step %.2fx faster (%s path), output relative RMS %.2e\n",
                     ggml_type_name(qt), tf / tq, qmm_path_name(qmm_choose(qt, 4096, 1280, 1280)), rel);
    return;
  }
  std::vector<bool> modes;
  if (o.precision != "bf16") modes.push_back(false);
  if (o.precision != "fp32") {
    if (cpu_can_bf16()) modes.push_back(true);
    else if (!o.json) std::printf("bf16: skipped, this CPU has no AVX-512\n");
  }
  BenchOutputs outs[2];
  for (size_t i = 0; i < modes.size(); ++i) out["runs"].push_back(bench_precision(o, modes[i], peak, &outs[i]));
  if (modes.size() == 2) {  // how far bf16 lands from fp32 on the full-size (random) model
    const double unet_rel = std::sqrt([&] {
      double num = 0, den = 0;
      for (int64_t i = 0; i < outs[0].unet.numel(); ++i) {
        const double d = outs[1].unet.data()[i] - outs[0].unet.data()[i];
        num += d * d;
        den += static_cast<double>(outs[0].unet.data()[i]) * outs[0].unet.data()[i];
      }
      return num / std::max(den, 1e-30);
    }());
    const double psnr = psnr_pm1(outs[1].image, outs[0].image);
    out["bf16_vs_fp32"] = {{"unet_relative_rms", unet_rel}, {"vae_decode_psnr_db", psnr}};
    if (!o.json) std::printf("bf16 vs fp32 (first size): UNet output relative RMS difference %.2e, VAE decode PSNR %.1f dB\n", unet_rel, psnr);
  }
  if (modes.size() == 2) {
    for (size_t i = 0; i < out["runs"][0]["sizes"].size(); ++i) {
      const double f = out["runs"][0]["sizes"][i]["unet_s_per_step"], h = out["runs"][1]["sizes"][i]["unet_s_per_step"];
      out["bf16_speedup"].push_back(f / h);
      if (!o.json) std::printf("bf16 speed-up at %d: %.2fx\n", out["runs"][0]["sizes"][i]["size"].get<int>(), f / h);
    }
  }
  if (!o.model.empty()) {  // load time of a real model, once its files are in the page cache
    for (bool bf16 : modes) {
      LoadOptions lo;
      lo.threads = o.threads;
      lo.precision = bf16 ? "bf16" : "fp32";
      auto warm = Engine::load(o.model, lo);
      if (!warm) {
        set_exit_code(report_error(warm.error()));
        return;
      }
      (*warm).reset();
      auto t = Clock::now();
      auto e = Engine::load(o.model, lo);
      const double secs = since(t);
      const double rss = current_rss_gb();
      out["model_load"].push_back({{"precision", lo.precision}, {"model", o.model}, {"load_s", secs}, {"rss_after_load_gb", rss}});
      if (!o.json) std::printf("[%s] load %s from the page cache: %.2f s, RSS after load %.2f GB\n", lo.precision.c_str(), o.model.c_str(), secs, rss);
    }
  }
  out["peak_rss_gb"] = peak_rss_gb();
  if (o.json) std::printf("%s\n", out.dump(2).c_str());
  else std::printf("peak RSS: %.2f GB%s\n", peak_rss_gb(), modes.size() == 2 ? " (both precisions in one process; run one --precision for its own figure)" : "");
}

}  // namespace

void add_bench(CLI::App& app) {
  auto o = std::make_shared<BenchOptions>();
  auto* cmd = app.add_subcommand("bench", "benchmark a full-size SD1.5/SDXL UNet or FLUX.1/SD3.5/Z-Image/Qwen-Image "
                                 "transformer, VAE and text encoders with synthetic weights");
  std::vector<std::string> archs{"sd15", "sdxl"};
  for (const auto& a : dit_bench_archs()) archs.push_back(a);
  archs.push_back("wan22-ti2v-5b");
  cmd->add_option("--arch", o->arch, "architecture: sd15 (SD 1.5 UNet, CLIP-L), sdxl (SDXL base UNet, OpenCLIP bigG), "
                  "flux-dev, flux-schnell, sd35-medium, sd35-large, zimage-turbo, qwen-image (DiT section: real configs, "
                  "--sizes 1024 and --steps 1 by default), wan22-ti2v-5b (video: --video-size 832x480 --frames 17 33)")
      ->capture_default_str()->check(CLI::IsMember(archs));
  cmd->add_flag("--quick", o->quick, "tiny widths, one iteration (CI smoke run)");
  cmd->add_flag("--json", o->json, "print JSON");
  cmd->add_flag("--profile", o->profile, "time per kernel kind (conv, linear, attention, norms, ...) inside the UNet step");
  auto* sizes = cmd->add_option("--sizes", o->sizes, "image sizes to run")->capture_default_str();
  auto* steps = cmd->add_option("--steps", o->steps, "timed UNet calls per size (best is reported)")->capture_default_str();
  auto stack = std::make_shared<int>(0);
  cmd->add_option("--stack", *stack, "DiT archs: time a stack of N blocks (FLUX: N double + N single; Z-Image: N joint + min(N, 2) "
                  "noise and context refiner blocks; LLM text encoders: N layers) at the real width and "
                  "scale by FLOPs to the real depth; 0 = the whole transformer when it fits in memory, else 2")
      ->check(CLI::NonNegativeNumber)->capture_default_str();
  cmd->add_option("-t,--threads", o->threads, "threads (0 = all cores)");
  cmd->add_option("--vae-tiled", o->vae_tiled, "also decode SIZE x SIZE in tiles first and report the growth of peak RSS (e.g. 1024)");
  cmd->add_option("--lora-rank", o->lora_rank,
                  "also time merging a synthetic rank-R LoRA over the UNet's attention/proj/ff linears, and unmerging it")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--precision", o->precision, "fp32, bf16 or both (speed-up printed)")->capture_default_str()
      ->check(CLI::IsMember({"fp32", "bf16", "both"}));
  cmd->add_option("--quant", o->quant, "UNet or DiT transformer: synthetic weights of every linear sd.cpp would quantise quantised to "
                  "TYPE (q8_0, q6_k, q5_k, q4_k, q3_k, q2_k, q5_1, q5_0, q4_1, q4_0, f16) with ggml's reference quantisers and computed from the blocks, vs the same weights in fp32");
  cmd->add_option("-m,--model", o->model, "also time loading this model (diffusers folder or .safetensors) from the page cache");
  cmd->add_option("--write-model", o->write_model, "instead of benchmarking, write a full-size model with random f16 weights "
                  "here, for whole-pipeline measurements: --arch sdxl an SDXL base diffusers folder (about 7 GB); --arch "
                  "zimage-turbo z_image_turbo_synthetic.safetensors plus Qwen3-4B, VAE and scheduler folders for --config "
                  "(about 20 GB); --arch wan22-ti2v-5b wan2.2_ti2v_5B_synthetic.safetensors plus UMT5-XXL, VAE and "
                  "scheduler folders (about 22 GB)");
  cmd->add_option("--tokenizers-from", o->tokenizers_from, "with --write-model: a diffusers folder of the family whose "
                  "tokenizer/ (SDXL: and tokenizer_2/) is copied");
  auto video = std::make_shared<WanBenchOptions>();
  auto video_size = std::make_shared<std::string>("832x480");
  cmd->add_option("--video-size", *video_size, "wan22-ti2v-5b: the video size WxH (multiples of 32)")->capture_default_str();
  cmd->add_option("--frames", video->frames, "wan22-ti2v-5b: frame counts to time (4k+1)")->capture_default_str();
  cmd->callback([o, sizes, steps, stack, video, video_size] {
    if (o->arch == "wan22-ti2v-5b" && o->write_model.empty()) {
      WanBenchOptions w = *video;
      std::pair<int, int> wh;
      if (!parse_pair(*video_size, 'x', &wh))
        return set_exit_code(report_error({ErrorCode::kInvalidArgument, "--video-size is WxH, e.g. 832x480"}));
      w.width = wh.first, w.height = wh.second;
      w.precision = o->precision, w.stack = *stack, w.threads = o->threads, w.json = o->json, w.profile = o->profile;
      if (o->quick) w.width = w.height = 64, w.frames = {5}, w.stack = 1, w.text_tokens = 16;  // smoke run
      if (steps->count()) w.steps = o->steps;
      return run_wan_bench(w);
    }
    if (!is_dit_arch(o->arch) || !o->write_model.empty()) return run_bench(*o);
    DitBenchOptions d;
    d.arch = o->arch, d.precision = o->precision, d.quant = o->quant, d.stack = *stack, d.threads = o->threads;
    d.json = o->json, d.profile = o->profile;
    if (sizes->count()) d.sizes = o->sizes;
    if (steps->count()) d.steps = o->steps;
    run_dit_bench(d);
  });
}

}  // namespace vg::cli
