// `visiongen bench --arch flux-dev|flux-schnell|sd35-medium|sd35-large|zimage-turbo|qwen-image`:
// the real FLUX.1 / SD3.5 / Z-Image / Qwen-Image widths with synthetic weights. Reports transformer
// s/step and GFLOP/s against a GEMM peak measured in the same run (same
// precision, the FLUX width), text-encode and VAE-decode times, peak RSS.
#include "cli/bench_dit.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>

#include "backend/cpu/bf16.h"
#include "backend/cpu/dnnl_context.h"
#include "backend/cpu/precision_probe.h"
#include "cli/bench_dit_parts.h"
#include "cli/commands.h"
#include "core/error.h"
#include "core/memory.h"
#include "core/profile.h"
#include "quant/ggml_types.h"
#include "quant/quantize.h"

namespace vg::cli {

namespace {

using namespace dit_bench;
using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }
constexpr double kGB = 1073741824.0;

// Tiny-size runs (smoke tests) use 256 rows: their ratio means little anyway.
int64_t g_peak_rows = 2048;
double gemm_peak(const WeightStore& ws) { return dit_bench::gemm_peak(ws, g_peak_rows); }

double bytes_per_weight(int qtype, bool bf16) {
  if (qtype >= 0) {
    const GgmlTypeInfo* t = ggml_type_info(qtype);
    return static_cast<double>(t->block_bytes) / static_cast<double>(t->block_elems);
  }
  return bf16 ? 2.0 : 4.0;
}

nlohmann::json bench_mode(const DitBenchOptions& o, const Arch& real, bool bf16, int qtype) {
  const std::string label = qtype >= 0 ? ggml_type_name(qtype) : bf16 ? "bf16" : "fp32";
  nlohmann::json out;
  out["precision"] = label;
  WeightStore ws;
  ws.make_synthetic(1);
  ws.set_compute_bf16(bf16);
  ws.set_synthetic_quant(qtype);
  double peak = gemm_peak(ws);  // measured again after each size: shared machines vary
  // Whole when the weights plus the largest size's activations fit comfortably.
  const int64_t max_tokens = (*std::max_element(o.sizes.begin(), o.sizes.end()) / 16) *
                             (*std::max_element(o.sizes.begin(), o.sizes.end()) / 16);
  const double act_bytes = 24.0 * (max_tokens + real.text_tokens) * hidden_width(real) * 4;
  const double need = cost(real, max_tokens).params * bytes_per_weight(qtype, bf16) + act_bytes;
  const bool whole = o.stack == 0 && need <= 0.7 * memory_budget_bytes();
  const int n = o.stack > 0 ? o.stack : 2;
  const Arch run_arch = whole ? real : stack_of(real, n);
  const std::string note = whole ? "whole transformer (" + depth(real) + " blocks)"
                                 : "measured " + depth(run_arch) + " blocks, scaled to " + depth(real);
  out["transformer_timed"] = note;
  out["transformer_weights_gb_whole"] = need / kGB;
  out["transformer_params_b"] = cost(real, 0).params / 1e9;
  say("[%s] GEMM peak (%s Linear %lldx3072x3072, best of before and after each size's steps): %.1f GFLOP/s "
      "before; transformer: %s\n",
      label.c_str(), label.c_str(), (long long)g_peak_rows, peak, note.c_str());
  auto t = Clock::now();
  std::optional<DitModel> model(std::in_place, run_arch, ws);
  out["build_s"] = since(t);
  out["rss_after_build_gb"] = peak_rss_bytes() / kGB;
  for (int size : o.sizes) {
    const int64_t toks = (size / 16) * (size / 16);
    model->run(run_arch, 32, 16);  // warm-up (weight reorders), cheap: a handful of tokens
    tensor_pool_trim();
    process_peak_gb();
    reset_peak_rss();
    const double before = peak_rss_bytes();
    profile::reset();
    profile::g_enabled = o.profile;
    double best = 1e30;
    for (int s = 0; s < o.steps; ++s) {
      t = Clock::now();
      model->run(run_arch, size);
      best = std::min(best, since(t));
    }
    profile::g_enabled = false;
    const double act = (peak_rss_bytes() - before) / kGB;
    peak = std::max(peak, gemm_peak(ws));
    const double scale = cost(real, toks).flops / cost(run_arch, toks).flops;
    const double gflop = cost(real, toks).flops / 1e9, s_step = best * scale, gfs = gflop / s_step;
    nlohmann::json r = {{"size", size},
                        {"image_tokens", toks},
                        {"text_tokens", real.text_tokens},
                        {"transformer_s_per_step", s_step},
                        {"measured_s_per_step", best},
                        {"transformer_gflop", gflop},
                        {"transformer_gflops", gfs},
                        {"frac_of_gemm_peak", gfs / peak},
                        {"transformer_activation_peak_gb", act},
                        {"gemm_peak_gflops", peak}};
    nlohmann::json prof = nlohmann::json::object();
    for (const auto& [k, v] : profile::totals()) prof[k] = v / o.steps;
    if (o.profile) r["profile_measured_s"] = prof;
    say("[%s] %dx%d (%lld image + %lld text tokens): transformer %.2f s/step (%s; %.2f s measured), "
        "%.0f GFLOP/step, %.1f GFLOP/s = %.0f%% of the %s GEMM peak (%.1f); activations %.2f GB\n",
        label.c_str(), size, size, (long long)toks, (long long)real.text_tokens, s_step, note.c_str(), best,
        gflop, gfs, 100 * gfs / peak, label.c_str(), peak, act);
    if (o.profile)
      for (const auto& [k, v] : prof.items())
        say("  %-14s %.3f s/step%s\n", k.c_str(), v.get<double>(), whole ? "" : " (in the measured stack)");
    out["sizes"].push_back(r);
  }
  out["gemm_peak_gflops"] = peak;
  model.reset();
  tensor_pool_trim();
  if (qtype >= 0) {  // quantisation applies to the transformer only
    out["peak_rss_gb"] = process_peak_gb();
    return out;
  }
  bench_text_encoders(real, ws, n, label, out);
  tensor_pool_trim();
  bench_vae(real, ws, o.sizes, label, out);
  out["peak_rss_gb"] = process_peak_gb();
  return out;
}

std::string load_average() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return a + " " + b + " " + c;
}

}  // namespace

double dit_bench::gemm_peak(const WeightStore& ws, int64_t m) {
  const int64_t k = 3072, n = 3072;
  const Linear lin = load_linear(ws, "gemm_peak", n, k, false);
  const Tensor x = filled({m, k}, 1);
  double best = 1e30;
  for (int r = 0; r < 5; ++r) {
    const auto t = Clock::now();
    const Tensor y = lin.forward(x);
    if (r) best = std::min(best, since(t));
  }
  return 2.0 * m * n * k / best / 1e9;
}

const std::vector<std::string>& dit_bench_archs() {
  static const std::vector<std::string> k{"flux-dev", "flux-schnell", "sd35-medium", "sd35-large", "zimage-turbo",
                                          "qwen-image"};
  return k;
}

bool is_dit_arch(const std::string& arch) {
  const auto& a = dit_bench_archs();
  return std::find(a.begin(), a.end(), arch) != a.end();
}

void run_dit_bench(const DitBenchOptions& o) {
  try {
    if (!is_dit_arch(o.arch)) {
      std::string list;
      for (const auto& a : dit_bench_archs()) list += (list.empty() ? "" : ", ") + a;
      fail(ErrorCode::kInvalidArgument, "unknown DiT arch '" + o.arch + "'; use one of " + list);
    }
    for (int s : o.sizes)
      if (s < 16 || s % 16 != 0 || s > 4096)
        fail(ErrorCode::kInvalidArgument,
             "size " + std::to_string(s) + " is not a multiple of 16 in 16..4096; use e.g. 1024");
    if (o.steps < 1) fail(ErrorCode::kInvalidArgument, "--steps must be at least 1");
    set_num_threads(o.threads);
    g_json = o.json;
    g_peak_rows = *std::max_element(o.sizes.begin(), o.sizes.end()) >= 512 ? 2048 : 256;
    const Arch real = arch_of(o.arch);
    nlohmann::json out;
    out["arch"] = o.arch, out["cpu"] = cpu_model_name(), out["threads"] = num_threads(),
    out["load_average"] = load_average();
    say("%s on %s, %d threads, load average %s\n", o.arch.c_str(), out["cpu"].get<std::string>().c_str(),
        num_threads(), out["load_average"].get<std::string>().c_str());
    if (!o.quant.empty()) {
      const int qt = ggml_type_from_name(o.quant);
      if (qt < 0 || !can_quantize(qt))
        fail(ErrorCode::kInvalidArgument, "--quant '" + o.quant +
                                              "' is not a type the benchmark can quantise to; use q8_0, "
                                              "q6_k, q5_k, q4_k, q3_k, q2_k, q5_1, q5_0, q4_1, q4_0 or f16");
      out["runs"].push_back(bench_mode(o, real, false, qt));
      // the same-run fp32 GEMM peak, the reference of the quantised figures
      WeightStore ws;
      ws.make_synthetic(1);
      const double fp = gemm_peak(ws);
      out["fp32_gemm_peak_gflops"] = fp;
      say("fp32 GEMM peak %.1f GFLOP/s: the %s transformer reaches %.0f%% of it\n", fp, o.quant.c_str(),
          100 * out["runs"][0]["sizes"].back()["transformer_gflops"].get<double>() / fp);
    } else {
      if (o.precision != "bf16") out["runs"].push_back(bench_mode(o, real, false, -1));
      if (o.precision != "fp32") {
        if (cpu_can_bf16())
          out["runs"].push_back(bench_mode(o, real, true, -1));
        else
          say("bf16: skipped, this CPU has no AVX-512\n");
      }
    }
    out["peak_rss_gb"] = process_peak_gb();
    if (o.json) std::printf("%s\n", out.dump(2).c_str());
    say("peak RSS: %.2f GB (all modes in one process; run one --precision for its own figure)\n",
        out["peak_rss_gb"].get<double>());
  } catch (const VgException& e) {
    set_exit_code(report_error(e.to_error()));
  }
}

}  // namespace vg::cli
