#include "sampling/sigma_schedules.h"

#include <algorithm>
#include <cctype>
#include <cmath>

#include "core/error.h"

namespace vg {

const std::vector<std::string>& schedule_names() {
  static const std::vector<std::string> k = {"default", "karras",      "exponential", "beta",
                                             "normal",  "simple",      "sgm_uniform", "ddim_uniform",
                                             "ays",     "leading",     "trailing",    "linspace"};
  return k;
}

std::string canonical_schedule(const std::string& name) {
  std::string n;
  for (char c : name) n += (c == ' ' || c == '-') ? '_' : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (n.empty() || n == "automatic" || n == "auto" || n == "discrete") return "default";
  if (n == "uniform") return "normal";
  if (n == "align_your_steps" || n == "alignyoursteps") return "ays";
  for (const auto& s : schedule_names())
    if (s == n) return s;
  return "";
}

bool is_spacing_schedule(const std::string& s) { return s == "leading" || s == "trailing" || s == "linspace"; }

std::vector<double> karras_sigmas(double sigma_min, double sigma_max, int steps, double rho) {
  std::vector<double> out(steps);
  const double lo = std::pow(sigma_min, 1 / rho), hi = std::pow(sigma_max, 1 / rho);
  for (int i = 0; i < steps; ++i) {
    const double ramp = steps == 1 ? 0.0 : static_cast<double>(i) / (steps - 1);
    out[i] = std::pow(hi + ramp * (lo - hi), rho);
  }
  return out;
}

std::vector<double> exponential_sigmas(double sigma_min, double sigma_max, int steps) {
  std::vector<double> out(steps);
  const double a = std::log(sigma_max), b = std::log(sigma_min);
  for (int i = 0; i < steps; ++i) out[i] = std::exp(steps == 1 ? a : a + (b - a) * i / (steps - 1));
  return out;
}

namespace {

// Continued fraction for the incomplete beta function (modified Lentz).
double beta_cf(double a, double b, double x) {
  const double tiny = 1e-300;
  double c = 1, d = 1 - (a + b) * x / (a + 1);
  if (std::fabs(d) < tiny) d = tiny;
  d = 1 / d;
  double h = d;
  for (int m = 1; m < 500; ++m) {
    const double m2 = 2.0 * m;
    double aa = m * (b - m) * x / ((a + m2 - 1) * (a + m2));
    d = 1 + aa * d;
    c = 1 + aa / c;
    d = std::fabs(d) < tiny ? 1 / tiny : 1 / d;
    if (std::fabs(c) < tiny) c = tiny;
    h *= d * c;
    aa = -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1));
    d = 1 + aa * d;
    c = 1 + aa / c;
    d = std::fabs(d) < tiny ? 1 / tiny : 1 / d;
    if (std::fabs(c) < tiny) c = tiny;
    const double del = d * c;
    h *= del;
    if (std::fabs(del - 1) < 1e-15) break;
  }
  return h;
}

double beta_cdf(double x, double a, double b) {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  const double lbeta = std::lgamma(a + b) - std::lgamma(a) - std::lgamma(b);
  const double front = std::exp(lbeta + a * std::log(x) + b * std::log1p(-x));
  if (x < (a + 1) / (a + b + 2)) return front * beta_cf(a, b, x) / a;
  return 1 - front * beta_cf(b, a, 1 - x) / b;
}

}  // namespace

double beta_ppf(double p, double a, double b) {
  if (p <= 0) return 0;
  if (p >= 1) return 1;
  double lo = 0, hi = 1;
  for (int i = 0; i < 200 && hi - lo > 1e-16; ++i) {
    const double mid = (lo + hi) / 2;
    (beta_cdf(mid, a, b) < p ? lo : hi) = mid;
  }
  return (lo + hi) / 2;
}

std::vector<double> beta_sigmas(double sigma_min, double sigma_max, int steps, double a, double b) {
  std::vector<double> out(steps);
  for (int i = 0; i < steps; ++i) {
    const double t = 1 - (steps == 1 ? 0.0 : static_cast<double>(i) / (steps - 1));
    out[i] = sigma_min + beta_ppf(t, a, b) * (sigma_max - sigma_min);
  }
  return out;
}

namespace {

// ComfyUI ModelSamplingDiscrete.sigma(t): log-linear interpolation.
double sigma_at(double t, const std::vector<float>& s) {
  t = std::clamp(t, 0.0, static_cast<double>(s.size() - 1));
  const size_t lo = static_cast<size_t>(std::floor(t)), hi = static_cast<size_t>(std::ceil(t));
  const double w = t - std::floor(t);
  return std::exp((1 - w) * std::log(s[lo]) + w * std::log(s[hi]));
}

// Align Your Steps (Sabour et al. 2024) 10-step noise levels for SD1.x.
const double kAysSd15[] = {14.615, 6.475, 3.861, 2.697, 1.886, 1.396, 0.963, 0.652, 0.399, 0.152, 0.029};

// Log-linear resampling of a descending sigma list to n points.
std::vector<double> loglinear_interp(const std::vector<double>& desc, int n) {
  std::vector<double> ys(desc.rbegin(), desc.rend());
  for (auto& y : ys) y = std::log(y);
  std::vector<double> out(n);
  const double m = static_cast<double>(ys.size() - 1);
  for (int i = 0; i < n; ++i) {
    const double x = (n == 1 ? 0.0 : static_cast<double>(i) / (n - 1)) * m;
    const size_t k = std::min(static_cast<size_t>(std::floor(x)), ys.size() - 2);
    out[n - 1 - i] = std::exp(ys[k] + (ys[k + 1] - ys[k]) * (x - k));
  }
  return out;
}

}  // namespace

std::vector<double> comfy_schedule(const std::string& name, const std::vector<float>& s, int steps) {
  const int n = static_cast<int>(s.size());
  std::vector<double> out;
  if (name == "normal" || name == "sgm_uniform") {
    // timesteps = linspace(t_max, t_min, steps) (sgm: steps+1 points, last dropped)
    const int pts = name == "sgm_uniform" ? steps + 1 : steps;
    const double start = n - 1, end = 0;
    for (int i = 0; i < steps; ++i) {
      const double t = pts == 1 ? start : start + (end - start) * i / (pts - 1);
      out.push_back(sigma_at(t, s));
    }
  } else if (name == "simple") {
    const double ss = static_cast<double>(n) / steps;
    for (int i = 0; i < steps; ++i) out.push_back(s[n - 1 - static_cast<int>(i * ss)]);
  } else if (name == "ddim_uniform") {
    const int ss = std::max(n / steps, 1);
    for (int x = 1; x < n; x += ss) out.push_back(s[x]);
    std::reverse(out.begin(), out.end());
  } else if (name == "ays") {
    std::vector<double> base(std::begin(kAysSd15), std::end(kAysSd15));
    if (steps + 1 != static_cast<int>(base.size())) base = loglinear_interp(base, steps + 1);
    out.assign(base.begin(), base.begin() + steps);
  } else {
    fail(ErrorCode::kInternal, "comfy_schedule: unknown schedule " + name);
  }
  return out;
}

}  // namespace vg
