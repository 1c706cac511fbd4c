// The DiT bench's text-encoder and VAE phases, and its small helpers.
#include "cli/bench_dit_parts.h"

#include <algorithm>
#include <chrono>
#include <cstdarg>
#include <cstdio>

#include "core/memory.h"
#include "models/autoencoder_kl.h"
#include "models/wan_vae.h"
#include "text/clip_text_model.h"
#include "text/qwen_encoder.h"
#include "text/t5_encoder.h"

namespace vg::cli::dit_bench {

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }
constexpr double kGB = 1073741824.0;
double g_peak = 0;

// T5-XXL on a few of its 24 (identical) layers, scaled; the CLIPs whole at 77 tokens.
void t5_and_clips(const Arch& real, const WeightStore& ws, int n, const std::string& label,
                  nlohmann::json& out) {
  T5Config tc;
  const int64_t t5_layers = std::min<int64_t>(n, tc.num_layers);
  tc.num_layers = t5_layers;
  double t5_s = 0, clip_s = 0;
  {
    T5Encoder t5(tc, ws);
    t5.encode({std::vector<int32_t>(8, 100)});  // warm-up
    std::vector<int32_t> ids(static_cast<size_t>(real.encoder_tokens), 100);
    const auto t = Clock::now();
    t5.encode({ids});
    t5_s = since(t) * 24.0 / static_cast<double>(t5_layers);
  }
  std::vector<ClipTextConfig> clips(1);
  if (real.family == Family::kMmdit) {  // SD3: CLIP-L and OpenCLIP bigG
    ClipTextConfig g;
    g.hidden_size = 1280, g.intermediate_size = 5120, g.num_heads = 20, g.num_layers = 32, g.act = Act::kGelu;
    g.projection_dim = 1280;
    clips.push_back(g);
  }
  for (const ClipTextConfig& cc : clips) {
    ClipTextModel clip(cc, ws);
    std::vector<int32_t> ids(77, 49407);
    ids[0] = 49406;
    clip.encode({ids}, 1);
    const auto t = Clock::now();
    clip.encode({ids}, 1);
    clip_s += since(t);
  }
  out["t5_s"] = t5_s, out["t5_measured_layers"] = t5_layers, out["clip_s"] = clip_s;
  out["text_encode_s"] = t5_s + clip_s;
  say("[%s] text encode %.2f s: T5-XXL %.2f s at %lld tokens (measured %lld of 24 layers, scaled), %s %.2f "
      "s\n",
      label.c_str(), t5_s + clip_s, t5_s, (long long)real.encoder_tokens, (long long)t5_layers,
      real.family == Family::kFlux ? "CLIP-L" : "CLIP-L + CLIP-G", clip_s);
}

// The LLM text encoder on `n` of its layers, scaled to the layers the
// pipeline runs. The vocabulary is cut to 4096 rows: only an embedding
// gather depends on it, and a synthetic table of 150k rows would be
// regenerated on every call. A synthetic store has every weight, so both q/k
// norms and q/k/v biases run (per-row vector work, negligible).
void llm(const Arch& real, const WeightStore& ws, int n, const std::string& label, nlohmann::json& out) {
  QwenTextConfig qc;  // Qwen3-4B (Z-Image)
  std::string name = "Qwen3-4B";
  int64_t needed = qc.num_layers - 1;       // hidden_states[-2]: the last layer is not run
  if (real.family == Family::kQwenImage) {  // Qwen2.5-VL-7B's language model, hidden_states[-1]
    qc.model_type = "qwen2_5_vl", name = "Qwen2.5-VL-7B";
    qc.hidden_size = 3584, qc.intermediate_size = 18944, qc.num_layers = 28, qc.num_heads = 28;
    qc.num_kv_heads = 4, qc.head_dim = 128, qc.mrope_section = {16, 24, 24};
    needed = qc.num_layers;
  }
  const int hidden_index = -1;  // of the measured stack: all its layers
  qc.vocab_size = 4096;
  const int64_t layers = std::min<int64_t>(n, needed);
  qc.num_layers = layers;
  QwenTextEncoder enc(qc, ws, "");
  std::vector<int32_t> ids(static_cast<size_t>(real.encoder_tokens));
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>((i * 7 + 13) % 4096);
  enc.hidden_states(ids, 8, hidden_index);  // warm-up (weight reorders)
  const auto t = Clock::now();
  enc.hidden_states(ids, real.encoder_tokens, hidden_index);
  const double s = since(t) * static_cast<double>(needed) / static_cast<double>(layers);
  out["llm"] = name, out["llm_encode_s"] = s, out["llm_measured_layers"] = layers, out["llm_layers"] = needed;
  out["text_encode_s"] = s;
  say("[%s] text encode %.2f s: %s at %lld tokens (measured %lld of the %lld layers run, scaled)\n",
      label.c_str(), s, name.c_str(), (long long)real.encoder_tokens, (long long)layers, (long long)needed);
}

// Qwen-Image's Wan-style VAE on one latent frame (an image).
void wan_vae(const WeightStore& ws, const std::vector<int>& sizes, const std::string& label,
             nlohmann::json& out) {
  WanVae vae(WanVaeConfig{}, ws, false);
  vae.decode(filled({1, 4, 4, 16}, 5));  // warm-up
  for (size_t i = 0; i < sizes.size(); ++i) {
    const int64_t l = sizes[i] / 8;
    const Tensor z = filled({1, l, l, 16}, 6);
    const auto t = Clock::now();
    vae.decode(z);
    const double dec = since(t);
    out["sizes"][i]["vae_decode_s"] = dec;
    say("[%s] %dx%d VAE decode %.2f s (Wan VAE, one frame)\n", label.c_str(), sizes[i], sizes[i], dec);
    tensor_pool_trim();
  }
}

}  // namespace

bool g_json = false;

void say(const char* fmt, ...) {
  if (g_json) return;
  va_list ap;
  va_start(ap, fmt);
  std::vprintf(fmt, ap);
  va_end(ap);
  std::fflush(stdout);
}

double process_peak_gb() {
  g_peak = std::max(g_peak, peak_rss_bytes());
  return g_peak / kGB;
}

Tensor filled(Shape shape, uint32_t salt) {
  Tensor t = Tensor::zeros(std::move(shape));
  for (int64_t i = 0; i < t.numel(); ++i)
    t.data()[i] = static_cast<float>((i * 7919 + salt) % 2000) / 1000.0f - 1.0f;
  return t;
}

void bench_text_encoders(const Arch& real, const WeightStore& ws, int n, const std::string& label,
                         nlohmann::json& out) {
  if (real.family == Family::kZImage || real.family == Family::kQwenImage)
    llm(real, ws, n, label, out);
  else
    t5_and_clips(real, ws, n, label, out);
}

void bench_vae(const Arch& real, const WeightStore& ws, const std::vector<int>& sizes,
               const std::string& label, nlohmann::json& out) {
  if (real.family == Family::kQwenImage) {
    wan_vae(ws, sizes, label, out);
    return;
  }
  VaeConfig vc;  // FLUX ae / SD3 VAE (Z-Image uses FLUX's): 16 latent channels, no quant convs
  vc.latent_channels = 16, vc.use_quant_conv = vc.use_post_quant_conv = false;
  AutoencoderKL vae(vc, ws, false);
  vae.decode_with(filled({1, 8, 8, 16}, 5), "off");  // warm-up
  for (size_t i = 0; i < sizes.size(); ++i) {
    const int64_t l = sizes[i] / 8;
    const Tensor z = filled({1, l, l, 16}, 6);
    const auto t = Clock::now();
    vae.decode_with(z, "off");
    const double dec = since(t);
    nlohmann::json& r = out["sizes"][i];
    r["vae_decode_s"] = dec;
    r["vae_decode_gflops"] = vae.decode_flops(1, l, l) / dec / 1e9;
    if (auto st = vae.decode_arena_stats()) r["vae_arena_gb"] = st->arena_bytes / kGB;
    say("[%s] %dx%d VAE decode %.2f s (%.0f GFLOP/s), activation arena %.2f GB\n", label.c_str(), sizes[i],
        sizes[i], dec, vae.decode_flops(1, l, l) / dec / 1e9, r.value("vae_arena_gb", 0.0));
    tensor_pool_trim();
  }
}

}  // namespace vg::cli::dit_bench
