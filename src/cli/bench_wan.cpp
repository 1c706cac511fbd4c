// `visiongen bench --arch wan22-ti2v-5b`: Wan 2.2 TI2V-5B at its real widths
// with synthetic weights. Per precision: the same-run GEMM peak, the
// transformer's s/step (one conditional call) at the video size for each
// frame count, GFLOP/s against the peak, UMT5-XXL encode, VAE decode s per
// frame, peak RSS. The transformer is timed whole when it fits, else as a
// stack of a few blocks scaled by FLOPs (said so).
#include "cli/bench_wan.h"

#include <algorithm>
#include <chrono>
#include <nlohmann/json.hpp>

#include "backend/cpu/bf16.h"
#include "backend/cpu/dnnl_context.h"
#include "backend/cpu/precision_probe.h"
#include "cli/bench_dit_parts.h"
#include "cli/commands.h"
#include "core/error.h"
#include "core/memory.h"
#include "core/profile.h"
#include "models/wan.h"
#include "models/wan_vae.h"
#include "text/t5_encoder.h"

namespace vg::cli {

namespace {

using namespace dit_bench;
using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }
constexpr double kGB = 1073741824.0;

// Model FLOPs of one transformer call on `n` video tokens (the text K/V are
// made once per prompt, not per step).
double wan_flops(const WanTransformerConfig& c, int64_t n, int64_t text) {
  const double d = static_cast<double>(c.dim()), f = static_cast<double>(c.ffn_dim), N = static_cast<double>(n);
  const double per_block = 2 * N * d * d * 4       // self-attention q, k, v, o
                           + 2 * 2 * N * N * d     // scores and values
                           + 2 * N * d * d * 2     // cross-attention q, o
                           + 2 * 2 * N * text * d  // cross-attention scores and values
                           + 2 * N * d * f * 2;    // FFN
  return per_block * static_cast<double>(c.num_layers) + 2 * N * d * 6 * d /* modulation: per distinct t, ~once */;
}

double wan_params(const WanTransformerConfig& c) {
  const double d = static_cast<double>(c.dim()), f = static_cast<double>(c.ffn_dim);
  return (8 * d * d + 2 * d * f + 6 * d) * static_cast<double>(c.num_layers) + 6 * d * d + c.text_dim * d;
}

// The Wan 2.2 VAE of TI2V-5B (diffusers' AutoencoderKLWan config).
WanVaeConfig ti2v_vae() {
  WanVaeConfig v;
  v.base_dim = 160, v.decoder_base_dim = 256, v.z_dim = 48, v.is_residual = true, v.patch_size = 2;
  v.in_channels = v.out_channels = 12;
  v.dim_mult = {1, 2, 4, 4};
  v.temperal_downsample = {false, true, true};
  v.latents_mean.assign(48, 0.0f);
  v.latents_std.assign(48, 1.0f);
  return v;
}

nlohmann::json bench_mode(const WanBenchOptions& o, bool bf16) {
  const std::string label = bf16 ? "bf16" : "fp32";
  nlohmann::json out;
  out["precision"] = label;
  WeightStore ws;
  ws.make_synthetic(1);
  ws.set_compute_bf16(bf16);
  double peak = gemm_peak(ws, 2048);
  const WanTransformerConfig real;
  const int64_t text = o.text_tokens;
  const int64_t gh = o.height / 32, gw = o.width / 32;
  const int64_t max_frames = *std::max_element(o.frames.begin(), o.frames.end());
  const int64_t max_tokens = ((max_frames - 1) / 4 + 1) * gh * gw;
  const double need = wan_params(real) * (bf16 ? 2 : 4) + 40.0 * max_tokens * real.dim() * 4;
  const bool whole = o.stack == 0 && need <= 0.7 * memory_budget_bytes();
  WanTransformerConfig run = real;
  if (!whole) run.num_layers = o.stack > 0 ? o.stack : 2;
  const std::string note = whole ? "whole transformer (" + std::to_string(real.num_layers) + " blocks)"
                                 : "measured " + std::to_string(run.num_layers) + " blocks, scaled to " +
                                       std::to_string(real.num_layers);
  out["transformer_timed"] = note;
  out["transformer_params_b"] = wan_params(real) / 1e9;
  say("[%s] GEMM peak %.1f GFLOP/s; transformer: %s\n", label.c_str(), peak, note.c_str());
  {
    WanTransformer model(run, ws);
    const WanContext ctx = model.prepare_text(filled({text, real.text_dim}, 3));
    for (int frames : o.frames) {
      const int64_t lf = (frames - 1) / 4 + 1, lh = o.height / 16, lw = o.width / 16, n = lf * gh * gw;
      const Tensor x = filled({lf, lh, lw, real.in_channels}, 2);
      std::vector<float> t(static_cast<size_t>(n), 500.0f);
      model.forward(filled({1, 2, 2, real.in_channels}, 4), std::vector<float>(1, 500.0f), ctx);  // warm-up
      tensor_pool_trim();
      process_peak_gb();
      reset_peak_rss();
      const double before = peak_rss_bytes();
      double best = 1e30;
      profile::reset();
      profile::g_enabled = o.profile;
      for (int s = 0; s < o.steps; ++s) {
        const auto t0 = Clock::now();
        model.forward(x, t, ctx);
        best = std::min(best, since(t0));
      }
      profile::g_enabled = false;
      const double act = (peak_rss_bytes() - before) / kGB;
      peak = std::max(peak, gemm_peak(ws, 2048));
      const double scale = wan_flops(real, n, text) / wan_flops(run, n, text);
      const double gflop = wan_flops(real, n, text) / 1e9, s_step = best * scale, gfs = gflop / s_step;
      out["transformer"].push_back({{"frames", frames},
                                    {"latent_frames", lf},
                                    {"tokens", n},
                                    {"text_tokens", text},
                                    {"transformer_s_per_call", s_step},
                                    {"measured_s", best},
                                    {"gflop", gflop},
                                    {"gflops", gfs},
                                    {"frac_of_gemm_peak", gfs / peak},
                                    {"activation_peak_gb", act},
                                    {"gemm_peak_gflops", peak}});
      say("[%s] %dx%d, %d frames (%lld tokens + %lld text): transformer %.2f s per call (%.2f s measured), %.0f "
          "GFLOP, %.1f GFLOP/s = %.0f%% of the %s GEMM peak (%.1f); activations %.2f GB; a CFG step is two calls\n",
          label.c_str(), o.width, o.height, frames, (long long)n, (long long)text, s_step, best, gflop, gfs,
          100 * gfs / peak, label.c_str(), peak, act);
      if (o.profile)
        for (const auto& [k, v] : profile::totals()) {
          out["transformer"].back()["profile_s"][k] = v / o.steps;
          say("  %-14s %.3f s per call%s\n", k.c_str(), v / o.steps, whole ? "" : " (in the measured stack)");
        }
    }
  }
  tensor_pool_trim();
  {  // UMT5-XXL on a few of its 24 layers, scaled
    T5Config tc;
    tc.per_layer_bias = true, tc.vocab_size = 1024;
    tc.num_layers = std::min(o.stack > 0 ? o.stack : 2, 24);
    T5Encoder t5(tc, ws);
    t5.encode({std::vector<int32_t>(8, 100)});
    const std::vector<int32_t> ids(static_cast<size_t>(text), 100);
    const auto t0 = Clock::now();
    t5.encode({ids}, {text});
    const double s = since(t0) * 24.0 / static_cast<double>(tc.num_layers);
    out["umt5_s"] = s;
    say("[%s] UMT5-XXL encode %.2f s at %lld tokens (measured %lld of 24 layers, scaled)\n", label.c_str(), s,
        (long long)text, (long long)tc.num_layers);
  }
  tensor_pool_trim();
  {  // VAE decode of the largest clip, one latent frame at a time, whole and in spatial tiles
    WanVae vae(ti2v_vae(), ws, false);
    const int64_t lf = (max_frames - 1) / 4 + 1;
    const Tensor z = filled({lf, o.height / 16, o.width / 16, 48}, 5);
    for (const bool tiled : {false, true}) {
      const std::string key = tiled ? "vae_decode_tiled" : "vae_decode";
      process_peak_gb();
      reset_peak_rss();
      const double before = peak_rss_bytes();
      const auto t0 = Clock::now();
      const Tensor video = vae.decode(z, WanTiling{tiled});
      const double s = since(t0), gb = (peak_rss_bytes() - before) / kGB;
      out[key + "_s"] = s, out[key + "_s_per_frame"] = s / static_cast<double>(video.dim(0));
      out[key + "_peak_gb"] = gb;
      say("[%s] VAE decode%s %lld frames at %dx%d: %.2f s (%.2f s per frame), +%.2f GB\n", label.c_str(),
          tiled ? " (tiles 256/192)" : "", (long long)video.dim(0), o.width, o.height, s,
          s / static_cast<double>(video.dim(0)), gb);
    }
  }
  out["peak_rss_gb"] = process_peak_gb();
  return out;
}

}  // namespace

void run_wan_bench(const WanBenchOptions& o) {
  try {
    if (o.width % 32 || o.height % 32 || o.width < 32 || o.height < 32 || o.width > 1920 || o.height > 1920)
      fail(ErrorCode::kInvalidArgument, "the video size must be multiples of 32 up to 1920, e.g. 832x480");
    for (int f : o.frames)
      if (f < 1 || (f - 1) % 4) fail(ErrorCode::kInvalidArgument, "--frames takes 4k+1 values, e.g. 17 33");
    if (o.steps < 1) fail(ErrorCode::kInvalidArgument, "--steps must be at least 1");
    set_num_threads(o.threads);
    g_json = o.json;
    nlohmann::json out;
    out["arch"] = "wan22-ti2v-5b", out["cpu"] = cpu_model_name(), out["threads"] = num_threads();
    out["size"] = std::to_string(o.width) + "x" + std::to_string(o.height);
    say("wan22-ti2v-5b on %s, %d threads, %dx%d\n", out["cpu"].get<std::string>().c_str(), num_threads(), o.width,
        o.height);
    if (o.precision != "bf16") out["runs"].push_back(bench_mode(o, false));
    if (o.precision != "fp32") {
      if (cpu_can_bf16())
        out["runs"].push_back(bench_mode(o, true));
      else
        say("bf16: skipped, this CPU has no AVX-512\n");
    }
    out["peak_rss_gb"] = process_peak_gb();
    if (o.json) std::printf("%s\n", out.dump(2).c_str());
    say("peak RSS: %.2f GB\n", out["peak_rss_gb"].get<double>());
  } catch (const VgException& e) {
    set_exit_code(report_error(e.to_error()));
  }
}

}  // namespace vg::cli
