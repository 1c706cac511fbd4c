#include "models/dit_blocks.h"

#include <cmath>
#include <cstring>

#include "backend/cpu/ops.h"
#include "core/profile.h"

namespace vg {

namespace {
constexpr float kEps = 1e-6f;  // the DiTs' LayerNorm eps
}  // namespace

Tensor modulated_layer_norm(const Tensor& x, const Tensor& mod, int shift, int scale, Tensor* second, int shift2,
                            int scale2) {
  profile::Scope prof_("dit_norm");
  const int64_t b = x.dim(0), t = x.dim(1), d = x.dim(2), m = mod.dim(1);
  Tensor out(x.shape());
  if (second) *second = Tensor(x.shape());
  float* o2 = second ? second->data() : nullptr;
#pragma omp parallel for
  for (int64_t r = 0; r < b * t; ++r) {
    const float* row = x.data() + r * d;
    const float* mb = mod.data() + (r / t) * m;
    double sum = 0, sq = 0;
    for (int64_t j = 0; j < d; ++j) sum += row[j];
    const double mean = sum / d;
    for (int64_t j = 0; j < d; ++j) sq += (row[j] - mean) * (row[j] - mean);
    const float rstd = static_cast<float>(1.0 / std::sqrt(sq / d + kEps)), fm = static_cast<float>(mean);
    float* o = out.data() + r * d;
    const float *sh = mb + shift * d, *sc = mb + scale * d;
    for (int64_t j = 0; j < d; ++j) o[j] = (row[j] - fm) * rstd * (1.0f + sc[j]) + sh[j];
    if (o2) {
      const float *sh2 = mb + shift2 * d, *sc2 = mb + scale2 * d;
      for (int64_t j = 0; j < d; ++j) o2[r * d + j] = (row[j] - fm) * rstd * (1.0f + sc2[j]) + sh2[j];
    }
  }
  return out;
}

void gated_add(Tensor& x, const Tensor& y, const Tensor& mod, int gate) {
  profile::Scope prof_("dit_gate");
  const int64_t t = x.dim(1), d = x.dim(2), m = mod.dim(1);
#pragma omp parallel for
  for (int64_t r = 0; r < x.dim(0) * t; ++r) {
    const float* g = mod.data() + (r / t) * m + gate * d;
    float* xr = x.data() + r * d;
    const float* yr = y.data() + r * d;
    for (int64_t j = 0; j < d; ++j) xr[j] += g[j] * yr[j];
  }
}

Tensor slice_tokens(const Tensor& a, int64_t begin, int64_t len) {
  const int64_t b = a.dim(0), t = a.dim(1), d = a.dim(2);
  if (begin == 0 && len == t) return a;
  Tensor out({b, len, d});
  for (int64_t i = 0; i < b; ++i)
    std::memcpy(out.data() + i * len * d, a.data() + (i * t + begin) * d, sizeof(float) * len * d);
  return out;
}

Tensor concat_tokens(const Tensor& a, const Tensor& b) {
  const int64_t n = a.dim(0), ta = a.dim(1), tb = b.dim(1), d = a.dim(2);
  Tensor out({n, ta + tb, d});
  for (int64_t i = 0; i < n; ++i) {
    std::memcpy(out.data() + i * (ta + tb) * d, a.data() + i * ta * d, ta * d * sizeof(float));
    std::memcpy(out.data() + (i * (ta + tb) + ta) * d, b.data() + i * tb * d, tb * d * sizeof(float));
  }
  return out;
}

Tensor gelu_tanh_mlp(const Linear& fc1, const Linear& fc2, const Tensor& x) {
  Tensor h = fc1.forward(x);
  activate_inplace(h, Act::kGeluTanh);
  return fc2.forward(h);
}

void rope_tables(const float* pos, int64_t n, const std::vector<int64_t>& axes, double theta, bool f64, Tensor& cos,
                 Tensor& sin) {
  const int64_t na = static_cast<int64_t>(axes.size());
  int64_t hd = 0;
  for (int64_t a : axes) hd += a;
  cos = Tensor({n, hd});
  sin = Tensor({n, hd});
  for (int64_t i = 0; i < n; ++i) {
    int64_t col = 0;
    for (int64_t a = 0; a < na; ++a) {
      const int64_t d = axes[a];
      for (int64_t j = 0; j < d / 2; ++j) {
        float c, sn;
        if (f64) {
          const double freq = 1.0 / std::pow(theta, double(2 * j) / double(d));
          const double angle = static_cast<double>(pos[i * na + a]) * freq;
          c = static_cast<float>(std::cos(angle));
          sn = static_cast<float>(std::sin(angle));
        } else {
          const float freq = 1.0f / std::pow(static_cast<float>(theta), float(2 * j) / float(d));
          const float angle = pos[i * na + a] * freq;
          c = std::cos(angle);
          sn = std::sin(angle);
        }
        float* cr = cos.data() + i * hd + col + 2 * j;
        float* sr = sin.data() + i * hd + col + 2 * j;
        cr[0] = cr[1] = c;
        sr[0] = sr[1] = sn;
      }
      col += d;
    }
  }
}

void norm_rope(float* x, int64_t heads, int64_t hd, const float* w, float eps, const float* c, const float* s) {
  for (int64_t h = 0; h < heads; ++h) {
    float* p = x + h * hd;
    if (w) {
      double sq = 0;
      for (int64_t j = 0; j < hd; ++j) sq += static_cast<double>(p[j]) * p[j];
      const float r = 1.0f / std::sqrt(static_cast<float>(sq / hd) + eps);
      for (int64_t j = 0; j < hd; ++j) p[j] = (p[j] * r) * w[j];
    }
    for (int64_t j = 0; j < hd; j += 2) {
      const float x0 = p[j], x1 = p[j + 1];
      p[j] = x0 * c[j] + (-x1) * s[j];
      p[j + 1] = x1 * c[j + 1] + x0 * s[j + 1];
    }
  }
}

void scatter_qkv(const Tensor& src, int64_t t0, const Tensor& qn, const Tensor& kn, const Tensor& cos,
                 const Tensor& sin, int64_t heads, float eps, Tensor& q, Tensor& k, Tensor& v) {
  profile::Scope prof_("dit_qk_rope");
  const int64_t b = src.dim(0), t = src.dim(1), stride = src.dim(2), tt = q.dim(1), d = q.dim(2);
  const int64_t hd = d / heads;
#pragma omp parallel for
  for (int64_t r = 0; r < b * t; ++r) {
    const int64_t bi = r / t, ti = t0 + r % t;
    const float* row = src.data() + r * stride;
    const size_t dst = static_cast<size_t>((bi * tt + ti) * d);
    std::memcpy(q.data() + dst, row, d * sizeof(float));
    std::memcpy(k.data() + dst, row + d, d * sizeof(float));
    std::memcpy(v.data() + dst, row + 2 * d, d * sizeof(float));
    const float* c = cos.data() + ti * hd;
    const float* s = sin.data() + ti * hd;
    norm_rope(q.data() + dst, heads, hd, qn.data(), eps, c, s);
    norm_rope(k.data() + dst, heads, hd, kn.data(), eps, c, s);
  }
}

}  // namespace vg
