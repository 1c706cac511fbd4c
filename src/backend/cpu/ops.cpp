#include "backend/cpu/ops.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>
#include <cstring>

#include "backend/cpu/bf16.h"
#include "backend/cpu/vec_math.h"
#include "core/profile.h"
#include "core/arena.h"
#include "core/error.h"

namespace vg {

namespace {

inline float silu(float v) { return v / (1.0f + std::exp(-v)); }
inline float gelu(float v) { return 0.5f * v * (1.0f + std::erf(v * 0.70710678118654752f)); }
inline float quick_gelu(float v) { return v / (1.0f + std::exp(-1.702f * v)); }

void check_same(const Tensor& a, const Tensor& b, const char* what) {
  if (a.shape() != b.shape())
    fail(ErrorCode::kInternal, std::string(what) + ": shape " + shape_str(a.shape()) + " vs " +
                                   shape_str(b.shape()));
}

}  // namespace

namespace {
thread_local bool g_cl_groupnorm = false;
}

TorchChannelsLastGroupNorm::TorchChannelsLastGroupNorm(bool on) : prev_(g_cl_groupnorm) { g_cl_groupnorm = on; }
TorchChannelsLastGroupNorm::~TorchChannelsLastGroupNorm() { g_cl_groupnorm = prev_; }
bool TorchChannelsLastGroupNorm::active() { return g_cl_groupnorm; }

namespace {

// a * b rounded on its own: keeps the compiler from fusing it into an FMA,
// which torch's vectorised kernels do not use.
inline float mul_rounded(float a, float b) {
  float p = a * b;
  asm("" : "+x"(p));
  return p;
}

// torch 1.13 GroupNormKernelImplChannelsLastInternal for one (n, group):
// per-channel float sums over pixels, summed over the group's channels,
// var = sum2 * s - mean^2, y = x * (rstd * gamma) + (beta - scale * mean).
void cl_group_stats_and_apply(const float* base, float* obase, int64_t pixels, int64_t c, int64_t cg,
                              const float* gamma, const float* beta, float eps, bool fuse_silu) {
  float mean = 0, sq = 0;
  for (int64_t j = 0; j < cg; ++j) {
    float cs = 0, cq = 0;
    for (int64_t p = 0; p < pixels; ++p) {
      const float v = base[p * c + j];
      cs = cs + v;
      cq = cq + mul_rounded(v, v);
    }
    mean = mean + cs;
    sq = sq + cq;
  }
  const float sc = 1.0f / static_cast<float>(cg * pixels);
  mean = mul_rounded(mean, sc);
  const float var = std::max(mul_rounded(sq, sc) - mul_rounded(mean, mean), 0.0f);
  const float rstd = 1.0f / std::sqrt(var + eps);
  for (int64_t j = 0; j < cg; ++j) {
    const float scale = mul_rounded(rstd, gamma[j]);
    const float bias = beta[j] - mul_rounded(scale, mean);
    for (int64_t p = 0; p < pixels; ++p) {
      const float y = mul_rounded(scale, base[p * c + j]) + bias;
      obase[p * c + j] = fuse_silu ? silu(y) : y;
    }
  }
}

}  // namespace

namespace {

// Per-channel totals of f(x) over the pixels of image `in`, in double:
// float partial sums over chunks of pixels (parallel), then combined.
// mean == null: sums of x; otherwise sums of (x - mean[c])^2.
std::vector<double> channel_totals(const float* img, int64_t pixels, int64_t c, const float* mean) {
  constexpr int64_t kChunk = 256;
  const int64_t chunks = (pixels + kChunk - 1) / kChunk;
  std::vector<double> total(static_cast<size_t>(c), 0.0);
  // Per-thread sums, added in thread order afterwards: the same result on
  // every run (a critical section would add them in arrival order).
  std::vector<std::vector<double>> per_thread;
#pragma omp parallel if (pixels * c >= (1 << 15))
  {
#pragma omp single
    per_thread.assign(static_cast<size_t>(omp_get_num_threads()), std::vector<double>(static_cast<size_t>(c), 0.0));
    std::vector<float> part(static_cast<size_t>(c)), unused(static_cast<size_t>(c));
    std::vector<double>& mine = per_thread[static_cast<size_t>(omp_get_thread_num())];
#pragma omp for schedule(static)
    for (int64_t k = 0; k < chunks; ++k) {
      std::fill(part.begin(), part.end(), 0.0f);
      const int64_t end = std::min(pixels, (k + 1) * kChunk);
      for (int64_t p = k * kChunk; p < end; ++p)
        mean ? vec::accumulate(img + p * c, c, unused.data(), part.data(), mean) : vec::accumulate(img + p * c, c, part.data(), nullptr, nullptr);
      for (int64_t j = 0; j < c; ++j) mine[static_cast<size_t>(j)] += part[static_cast<size_t>(j)];
    }
  }
  for (const auto& mine : per_thread)
    for (int64_t j = 0; j < c; ++j) total[static_cast<size_t>(j)] += mine[static_cast<size_t>(j)];
  return total;
}

// Two-pass statistics (mean, then centred squares) as torch's contiguous
// GroupNorm, then one vectorised pass y = x * a[c] + b[c] (+ SiLU), into
// float32 `out` or, when out_bf16 is set, into bf16.
void group_norm_into(const Tensor& x, float* out, int groups, const Tensor& gamma, const Tensor& beta, float eps, bool fuse_silu,
                     uint16_t* out_bf16 = nullptr) {
  const int64_t n = x.dim(0), c = x.dim(-1), s = x.numel() / (n * c), cg = c / groups;
  std::vector<float> mean_c(static_cast<size_t>(c)), a(static_cast<size_t>(c)), b(static_cast<size_t>(c));
  for (int64_t in = 0; in < n; ++in) {
    const float* img = x.data() + in * s * c;
    const std::vector<double> sums = channel_totals(img, s, c, nullptr);
    std::vector<double> gmean(static_cast<size_t>(groups));
    for (int64_t g = 0; g < groups; ++g) {
      double t = 0;
      for (int64_t j = 0; j < cg; ++j) t += sums[static_cast<size_t>(g * cg + j)];
      gmean[static_cast<size_t>(g)] = t / static_cast<double>(s * cg);
      for (int64_t j = 0; j < cg; ++j) mean_c[static_cast<size_t>(g * cg + j)] = static_cast<float>(gmean[static_cast<size_t>(g)]);
    }
    const std::vector<double> sq = channel_totals(img, s, c, mean_c.data());
    for (int64_t g = 0; g < groups; ++g) {
      double t = 0;
      for (int64_t j = 0; j < cg; ++j) t += sq[static_cast<size_t>(g * cg + j)];
      const float rstd = static_cast<float>(1.0 / std::sqrt(t / static_cast<double>(s * cg) + eps));
      for (int64_t j = 0; j < cg; ++j) {
        const size_t k = static_cast<size_t>(g * cg + j);
        a[k] = rstd * gamma.data()[k];
        b[k] = beta.data()[k] - mean_c[k] * a[k];
      }
    }
    if (out_bf16) {
      uint16_t* ob = out_bf16 + in * s * c;
#pragma omp parallel if (s * c >= (1 << 15))
      {
        std::vector<float> row(static_cast<size_t>(c));
#pragma omp for schedule(static)
        for (int64_t p = 0; p < s; ++p) {
          vec::affine(img + p * c, row.data(), c, a.data(), b.data(), fuse_silu);
          to_bf16(row.data(), ob + p * c, c);
        }
      }
      continue;
    }
    float* o = out + in * s * c;
#pragma omp parallel for schedule(static) if (s * c >= (1 << 15))
    for (int64_t p = 0; p < s; ++p) vec::affine(img + p * c, o + p * c, c, a.data(), b.data(), fuse_silu);
  }
}

}  // namespace

Tensor group_norm(const Tensor& x, int groups, const Tensor& gamma, const Tensor& beta,
                  float eps, bool fuse_silu) {
  profile::Scope prof_("group_norm");
  const int64_t n = x.dim(0), c = x.dim(-1), s = x.numel() / (n * c);
  if (c % groups != 0)
    fail(ErrorCode::kShapeMismatch, "group_norm: " + std::to_string(c) +
                                        " channels not divisible by " + std::to_string(groups));
  const int64_t cg = c / groups;
  Tensor out(x.shape());
  if (dry_run_active()) return out;  // planning pass: shapes and allocations only
  if (!g_cl_groupnorm) {
    group_norm_into(x, out.data(), groups, gamma, beta, eps, fuse_silu);
    return out;
  }
  const float* xd = x.data();
  float* od = out.data();
  const float* g = gamma.data();
  const float* b = beta.data();
#pragma omp parallel for collapse(2)
  for (int64_t in = 0; in < n; ++in)
    for (int64_t ig = 0; ig < groups; ++ig)
      cl_group_stats_and_apply(xd + in * s * c + ig * cg, od + in * s * c + ig * cg, s, c, cg, g + ig * cg, b + ig * cg, eps,
                               fuse_silu);
  return out;
}

void group_norm_to_bf16(const Tensor& x, int groups, const Tensor& gamma, const Tensor& beta, float eps, bool silu, uint16_t* out) {
  profile::Scope prof_("group_norm");
  if (x.dim(-1) % groups != 0) fail(ErrorCode::kShapeMismatch, "group_norm: channels not divisible by groups");
  if (dry_run_active()) return;
  group_norm_into(x, nullptr, groups, gamma, beta, eps, silu, out);
}

void group_norm_inplace(Tensor& x, int groups, const Tensor& gamma, const Tensor& beta, float eps, bool fuse_silu) {
  if (g_cl_groupnorm) {
    x = group_norm(x, groups, gamma, beta, eps, fuse_silu);
    return;
  }
  profile::Scope prof_("group_norm");
  if (x.dim(-1) % groups != 0) fail(ErrorCode::kShapeMismatch, "group_norm: channels not divisible by groups");
  if (dry_run_active()) return;
  group_norm_into(x, x.data(), groups, gamma, beta, eps, fuse_silu);
}

Tensor layer_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps) {
  profile::Scope prof_("layer_norm");
  const int64_t c = x.dim(-1), m = x.numel() / c;
  Tensor out(x.shape());
  if (dry_run_active()) return out;  // planning pass: shapes and allocations only
  const float* xd = x.data();
  float* od = out.data();
#pragma omp parallel for
  for (int64_t i = 0; i < m; ++i) {
    const float* row = xd + i * c;
    double sum = 0, sq = 0;
    for (int64_t j = 0; j < c; ++j) sum += row[j];
    double mean = sum / c;
    for (int64_t j = 0; j < c; ++j) sq += (row[j] - mean) * (row[j] - mean);
    float rstd = static_cast<float>(1.0 / std::sqrt(sq / c + eps));
    float fm = static_cast<float>(mean);
    float* o = od + i * c;
    for (int64_t j = 0; j < c; ++j) o[j] = (row[j] - fm) * rstd * gamma.data()[j] + beta.data()[j];
  }
  return out;
}

void activate_inplace(Tensor& x, Act act) {
  profile::Scope prof_("elementwise");
  if (dry_run_active()) return;
  float* d = x.data();
  const int64_t n = x.numel();
  switch (act) {
    case Act::kNone: return;
    case Act::kSilu:
#pragma omp parallel for
      for (int64_t i = 0; i < n; ++i) d[i] = silu(d[i]);
      return;
    case Act::kGelu:
#pragma omp parallel for
      for (int64_t i = 0; i < n; ++i) d[i] = gelu(d[i]);
      return;
    case Act::kGeluTanh: {  // vectorised: the MLPs of FLUX/SD3/T5 spend real time here
      constexpr int64_t kChunk = 4096;
#pragma omp parallel for
      for (int64_t i = 0; i < n; i += kChunk) vec::gelu_tanh(d + i, d + i, std::min(kChunk, n - i));
      return;
    }
    case Act::kQuickGelu:
#pragma omp parallel for
      for (int64_t i = 0; i < n; ++i) d[i] = quick_gelu(d[i]);
      return;
  }
}

Tensor activate(const Tensor& x, Act act) {
  Tensor y = x.clone();
  activate_inplace(y, act);
  return y;
}

void add_inplace(Tensor& a, const Tensor& b) {
  profile::Scope prof_("elementwise");
  check_same(a, b, "add");
  if (dry_run_active()) return;
  float* ad = a.data();
  const float* bd = b.data();
  const int64_t n = a.numel();
#pragma omp parallel for
  for (int64_t i = 0; i < n; ++i) ad[i] += bd[i];
}

void scale_inplace(Tensor& a, float s) {
  if (dry_run_active()) return;
  float* ad = a.data();
  const int64_t n = a.numel();
#pragma omp parallel for
  for (int64_t i = 0; i < n; ++i) ad[i] *= s;
}

void add_per_channel_inplace(Tensor& x, const Tensor& v) {
  profile::Scope prof_("elementwise");
  const int64_t n = x.dim(0), c = x.dim(-1), s = x.numel() / (n * c);
  if (v.numel() != n * c) fail(ErrorCode::kInternal, "add_per_channel: size mismatch");
  if (dry_run_active()) return;
  float* d = x.data();
  const float* vd = v.data();
#pragma omp parallel for collapse(2)
  for (int64_t i = 0; i < n; ++i)
    for (int64_t p = 0; p < s; ++p) {
      float* row = d + (i * s + p) * c;
      const float* vr = vd + i * c;
      for (int64_t j = 0; j < c; ++j) row[j] += vr[j];
    }
}

Tensor geglu(const Tensor& x) {
  profile::Scope prof_("geglu");
  const int64_t c2 = x.dim(-1), c = c2 / 2, m = x.numel() / c2;
  Shape os = x.shape();
  os.back() = c;
  Tensor out(os);
  if (dry_run_active()) return out;  // planning pass: shapes and allocations only
  const float* xd = x.data();
  float* od = out.data();
#pragma omp parallel for
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < c; ++j) od[i * c + j] = xd[i * c2 + j] * gelu(xd[i * c2 + c + j]);
  return out;
}

void upsample_nearest_to_bf16(const Tensor& x, int64_t oh, int64_t ow, uint16_t* od) {
  profile::Scope prof_("elementwise");
  const int64_t n = x.dim(0), h = x.dim(1), w = x.dim(2), c = x.dim(3);
  if (dry_run_active()) return;
  const float* xd = x.data();
#pragma omp parallel for collapse(2)
  for (int64_t i = 0; i < n; ++i)
    for (int64_t y = 0; y < oh; ++y) {
      const int64_t sy = std::min<int64_t>(h - 1, static_cast<int64_t>(y * (static_cast<float>(h) / oh)));
      for (int64_t xx = 0; xx < ow; ++xx) {
        const int64_t sx = std::min<int64_t>(w - 1, static_cast<int64_t>(xx * (static_cast<float>(w) / ow)));
        to_bf16(xd + ((i * h + sy) * w + sx) * c, od + ((i * oh + y) * ow + xx) * c, c);
      }
    }
}

Tensor upsample_nearest(const Tensor& x, int64_t oh, int64_t ow) {
  profile::Scope prof_("elementwise");
  const int64_t n = x.dim(0), h = x.dim(1), w = x.dim(2), c = x.dim(3);
  Tensor out({n, oh, ow, c});
  if (dry_run_active()) return out;  // planning pass: shapes and allocations only
  const float* xd = x.data();
  float* od = out.data();
#pragma omp parallel for collapse(2)
  for (int64_t i = 0; i < n; ++i)
    for (int64_t y = 0; y < oh; ++y) {
      // PyTorch 'nearest': src = floor(dst * in / out).
      int64_t sy = std::min<int64_t>(h - 1, static_cast<int64_t>(y * (static_cast<float>(h) / oh)));
      for (int64_t xx = 0; xx < ow; ++xx) {
        int64_t sx = std::min<int64_t>(w - 1, static_cast<int64_t>(xx * (static_cast<float>(w) / ow)));
        std::memcpy(od + ((i * oh + y) * ow + xx) * c, xd + ((i * h + sy) * w + sx) * c,
                    c * sizeof(float));
      }
    }
  return out;
}

Tensor concat_channels(const Tensor& a, const Tensor& b) {
  profile::Scope prof_("elementwise");
  const int64_t ca = a.dim(-1), cb = b.dim(-1), m = a.numel() / ca;
  if (b.numel() / cb != m) fail(ErrorCode::kInternal, "concat_channels: mismatched sizes");
  Shape os = a.shape();
  os.back() = ca + cb;
  Tensor out(os);
  if (dry_run_active()) return out;  // planning pass: shapes and allocations only
  const float* ad = a.data();
  const float* bd = b.data();
  float* od = out.data();
#pragma omp parallel for
  for (int64_t i = 0; i < m; ++i) {
    std::memcpy(od + i * (ca + cb), ad + i * ca, ca * sizeof(float));
    std::memcpy(od + i * (ca + cb) + ca, bd + i * cb, cb * sizeof(float));
  }
  return out;
}

Tensor concat_batch(const Tensor& a, const Tensor& b) {
  Shape os = a.shape();
  os[0] += b.dim(0);
  Tensor out(os);
  if (dry_run_active()) return out;  // planning pass: shapes and allocations only
  std::memcpy(out.data(), a.data(), a.numel() * sizeof(float));
  std::memcpy(out.data() + a.numel(), b.data(), b.numel() * sizeof(float));
  return out;
}

Tensor slice_batch(const Tensor& x, int64_t begin, int64_t end) {
  Shape os = x.shape();
  const int64_t per = x.numel() / os[0];
  os[0] = end - begin;
  return Tensor::from(os, x.data() + begin * per);
}

Tensor nchw_to_nhwc(const Tensor& x) {
  const int64_t n = x.dim(0), c = x.dim(1), h = x.dim(2), w = x.dim(3);
  Tensor out({n, h, w, c});
  for (int64_t i = 0; i < n; ++i)
    for (int64_t ch = 0; ch < c; ++ch)
      for (int64_t p = 0; p < h * w; ++p)
        out.data()[(i * h * w + p) * c + ch] = x.data()[(i * c + ch) * h * w + p];
  return out;
}

Tensor nhwc_to_nchw(const Tensor& x) {
  const int64_t n = x.dim(0), h = x.dim(1), w = x.dim(2), c = x.dim(3);
  Tensor out({n, c, h, w});
  for (int64_t i = 0; i < n; ++i)
    for (int64_t ch = 0; ch < c; ++ch)
      for (int64_t p = 0; p < h * w; ++p)
        out.data()[(i * c + ch) * h * w + p] = x.data()[(i * h * w + p) * c + ch];
  return out;
}

void rms_norm_rows(const float* x, int64_t rows, int64_t c, const float* w, float eps, float* out) {
#pragma omp parallel for if (rows * c >= (1 << 15))
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * c;
    float* o = out + r * c;
    double ss = 0;
    for (int64_t i = 0; i < c; ++i) ss += static_cast<double>(xr[i]) * xr[i];
    const float inv = 1.0f / std::sqrt(static_cast<float>(ss / c) + eps);
    if (w)
      for (int64_t i = 0; i < c; ++i) o[i] = w[i] * (xr[i] * inv);
    else
      for (int64_t i = 0; i < c; ++i) o[i] = xr[i] * inv;
  }
}

Tensor rms_norm(const Tensor& x, const Tensor& w, float eps) {
  Tensor out(x.shape());
  const int64_t c = x.dim(-1);
  rms_norm_rows(x.data(), x.numel() / c, c, w.numel() ? w.data() : nullptr, eps, out.data());
  return out;
}

}  // namespace vg
