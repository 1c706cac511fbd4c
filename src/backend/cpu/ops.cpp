#include "backend/cpu/ops.h"

#include <cmath>
#include <cstring>

#include "core/profile.h"
#include "core/error.h"

namespace vg {

namespace {

inline float silu(float v) { return v / (1.0f + std::exp(-v)); }
inline float gelu(float v) { return 0.5f * v * (1.0f + std::erf(v * 0.70710678118654752f)); }
inline float gelu_tanh(float v) {
  return 0.5f * v * (1.0f + std::tanh(0.7978845608028654f * (v + 0.044715f * v * v * v)));
}
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

Tensor group_norm(const Tensor& x, int groups, const Tensor& gamma, const Tensor& beta,
                  float eps, bool fuse_silu) {
  profile::Scope prof_("group_norm");
  const bool one_pass = g_cl_groupnorm;
  const int64_t n = x.dim(0), c = x.dim(-1), s = x.numel() / (n * c);
  if (c % groups != 0)
    fail(ErrorCode::kShapeMismatch, "group_norm: " + std::to_string(c) +
                                        " channels not divisible by " + std::to_string(groups));
  const int64_t cg = c / groups;
  Tensor out(x.shape());
  const float* xd = x.data();
  float* od = out.data();
  const float* g = gamma.data();
  const float* b = beta.data();
#pragma omp parallel for collapse(2)
  for (int64_t in = 0; in < n; ++in) {
    for (int64_t ig = 0; ig < groups; ++ig) {
      const float* base = xd + in * s * c + ig * cg;
      float* obase = od + in * s * c + ig * cg;
      if (one_pass) {
        cl_group_stats_and_apply(base, obase, s, c, cg, g + ig * cg, b + ig * cg, eps, fuse_silu);
        continue;
      }
      double sum = 0, sq = 0;
      for (int64_t p = 0; p < s; ++p) {
        const float* row = base + p * c;
        for (int64_t j = 0; j < cg; ++j) sum += row[j];
      }
      const double cnt = static_cast<double>(s * cg);
      const double mean = sum / cnt;
      for (int64_t p = 0; p < s; ++p) {
        const float* row = base + p * c;
        for (int64_t j = 0; j < cg; ++j) {
          double d = row[j] - mean;
          sq += d * d;
        }
      }
      const float rstd = static_cast<float>(1.0 / std::sqrt(sq / cnt + eps));
      const float fm = static_cast<float>(mean);
      for (int64_t p = 0; p < s; ++p) {
        const float* row = base + p * c;
        float* orow = obase + p * c;
        for (int64_t j = 0; j < cg; ++j) {
          float v = (row[j] - fm) * rstd * g[ig * cg + j] + b[ig * cg + j];
          orow[j] = fuse_silu ? silu(v) : v;
        }
      }
    }
  }
  return out;
}

Tensor layer_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps) {
  profile::Scope prof_("layer_norm");
  const int64_t c = x.dim(-1), m = x.numel() / c;
  Tensor out(x.shape());
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
    case Act::kGeluTanh:
#pragma omp parallel for
      for (int64_t i = 0; i < n; ++i) d[i] = gelu_tanh(d[i]);
      return;
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
  float* ad = a.data();
  const float* bd = b.data();
  const int64_t n = a.numel();
#pragma omp parallel for
  for (int64_t i = 0; i < n; ++i) ad[i] += bd[i];
}

void scale_inplace(Tensor& a, float s) {
  float* ad = a.data();
  const int64_t n = a.numel();
#pragma omp parallel for
  for (int64_t i = 0; i < n; ++i) ad[i] *= s;
}

void add_per_channel_inplace(Tensor& x, const Tensor& v) {
  profile::Scope prof_("elementwise");
  const int64_t n = x.dim(0), c = x.dim(-1), s = x.numel() / (n * c);
  if (v.numel() != n * c) fail(ErrorCode::kInternal, "add_per_channel: size mismatch");
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
  const float* xd = x.data();
  float* od = out.data();
#pragma omp parallel for
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < c; ++j) od[i * c + j] = xd[i * c2 + j] * gelu(xd[i * c2 + c + j]);
  return out;
}

Tensor upsample_nearest(const Tensor& x, int64_t oh, int64_t ow) {
  profile::Scope prof_("elementwise");
  const int64_t n = x.dim(0), h = x.dim(1), w = x.dim(2), c = x.dim(3);
  Tensor out({n, oh, ow, c});
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

}  // namespace vg
