// UniPCMultistepScheduler (diffusers 0.27): UniP predictor + UniC corrector,
// B(h) = h (bh1) or e^h - 1 (bh2), data (predict_x0) or noise prediction.
#include <cmath>

#include "core/error.h"
#include "sampling/flow_shift.h"
#include "sampling/sampler_registry.h"
#include "sampling/sigma_sampler.h"

namespace vg {

namespace {

struct AlphaSigma {
  float alpha, sigma;
  float lambda() const { return std::log(alpha) - std::log(sigma); }
};

// Solves the small dense system A x = b (Gaussian elimination, partial pivoting).
std::vector<float> solve(std::vector<std::vector<float>> a, std::vector<float> b) {
  const size_t n = b.size();
  for (size_t c = 0; c < n; ++c) {
    size_t p = c;
    for (size_t r = c + 1; r < n; ++r)
      if (std::fabs(a[r][c]) > std::fabs(a[p][c])) p = r;
    std::swap(a[c], a[p]);
    std::swap(b[c], b[p]);
    for (size_t r = c + 1; r < n; ++r) {
      const float f = a[r][c] / a[c][c];
      for (size_t k = c; k < n; ++k) a[r][k] -= f * a[c][k];
      b[r] -= f * b[c];
    }
  }
  std::vector<float> x(n);
  for (size_t r = n; r-- > 0;) {
    float s = b[r];
    for (size_t k = r + 1; k < n; ++k) s -= a[r][k] * x[k];
    x[r] = s / a[r][r];
  }
  return x;
}

class UniPcSampler : public SigmaSampler {
 public:
  UniPcSampler(const SchedulerConfig& cfg, const SamplerOptions& o)
      // diffusers 0.27's UniPC ends on sigma_min (it has no final_sigmas_type option yet)
      : SigmaSampler(cfg, o, Style{true, true, true, "linspace", "sigma_min"}) {
    order_ = cfg.get("solver_order", 2);
    bh2_ = cfg.get<std::string>("solver_type", "bh2") == "bh2";
    predict_x0_ = cfg.get("predict_x0", true);
    lower_order_final_ = cfg.get("lower_order_final", true);
    if (cfg.has("disable_corrector")) disable_corrector_ = cfg.get<std::vector<int>>("disable_corrector", {});
    if (order_ < 1 || order_ > 3) fail(ErrorCode::kInvalidArgument, "UniPC solver_order must be 1, 2 or 3");
    flow_ = cfg.get("use_flow_sigmas", false);
    if (flow_ && !predict_x0_) fail(ErrorCode::kInvalidArgument, "UniPC's flow form needs predict_x0");
  }
  std::string name() const override { return bh2_ ? "unipc" : "unipc_bh1"; }

  void set_timesteps(int steps) override {
    if (flow_) {  // rectified flow: x_t = (1 - s) x0 + s noise, final sigma 0
      flow_unipc_grid(cfg_, opt_.image_seq_len, steps, &sigmas_, &timesteps_);
    } else {
      make_schedule(steps);
      single_call_schedule();
    }
    outputs_.clear();
    lower_order_nums_ = 0;
    last_sample_ = Tensor();
  }

  Tensor step(const Tensor& m, size_t i, const Tensor& sample, Rng&) override {
    bool use_corrector = i > 0 && !last_sample_.empty();
    for (int d : disable_corrector_)
      if (static_cast<size_t>(d) + 1 == i) use_corrector = false;
    Tensor conv = convert(m, sample, sigmas_[i]);
    Tensor x = sample;
    if (use_corrector) x = corrector(conv, i);
    outputs_.push_back(conv);
    if (outputs_.size() > static_cast<size_t>(order_)) outputs_.erase(outputs_.begin());
    const int n = static_cast<int>(timesteps_.size());
    int this_order = lower_order_final_ ? std::min(order_, n - static_cast<int>(i)) : order_;
    this_order_ = std::min(this_order, lower_order_nums_ + 1);
    last_sample_ = x;
    Tensor out = predictor(x, i, this_order_);
    if (lower_order_nums_ < order_) ++lower_order_nums_;
    return out;
  }

  Tensor add_noise(const Tensor& x0, const Tensor& noise, size_t i) const override {
    if (!flow_) return SigmaSampler::add_noise(x0, noise, i);
    return lincomb(sigmas_[i], noise, 1 - sigmas_[i], x0);
  }
  Tensor scale_model_input(const Tensor& x, size_t i) const override { return flow_ ? x : SigmaSampler::scale_model_input(x, i); }
  float init_noise_sigma() const override { return flow_ ? 1.0f : SigmaSampler::init_noise_sigma(); }

 private:
  AlphaSigma as(float s) const {
    if (flow_) return {1.0f - s, s};
    const float a = 1.0f / std::sqrt(s * s + 1.0f);
    return {a, s * a};
  }
  float lambda_of(float s) const { return as(s).lambda(); }

  Tensor convert(const Tensor& m, const Tensor& x, float s) const {
    const AlphaSigma q = as(s);
    const float a = q.alpha, sg = q.sigma;
    if (flow_) return lincomb(1.0f, x, -sg, m);
    const std::string& p = cfg_.prediction_type;
    if (predict_x0_) {
      if (p == "epsilon") return lincomb(1.0f / a, x, -sg / a, m);
      if (p == "sample") return m.clone();
      return lincomb(a, x, -sg, m);
    }
    if (p == "epsilon") return m.clone();
    if (p == "sample") return lincomb(1.0f / sg, x, -a / sg, m);
    return lincomb(sg, x, a, m);
  }

  // The B(h)-dependent coefficient vector b and h*phi_1 for `order`.
  void coefficients(float h, int order, float* h_phi_1, float* b_h, std::vector<float>* b) const {
    const float hh = predict_x0_ ? -h : h;
    *h_phi_1 = std::expm1(hh);
    float h_phi_k = *h_phi_1 / hh - 1;
    float factorial = 1;
    *b_h = bh2_ ? std::expm1(hh) : hh;
    for (int k = 1; k <= order; ++k) {
      b->push_back(h_phi_k * factorial / *b_h);
      factorial *= static_cast<float>(k + 1);
      h_phi_k = h_phi_k / hh - 1 / factorial;
    }
  }

  Tensor combine(const Tensor& x, float s_t, float s_s0, float h_phi_1, float b_h, const Tensor& m0,
                 const std::vector<Tensor>& d1s, const std::vector<float>& rhos, const Tensor* d1_t,
                 float rho_t) const {
    const float a_t = as(s_t).alpha, sg_t = as(s_t).sigma;
    const float a_s0 = as(s_s0).alpha, sg_s0 = as(s_s0).sigma;
    const float cx = predict_x0_ ? sg_t / sg_s0 : a_t / a_s0;
    const float cm = predict_x0_ ? a_t * h_phi_1 : sg_t * h_phi_1;
    const float cb = predict_x0_ ? a_t * b_h : sg_t * b_h;
    Tensor out(x.shape());
    for (int64_t k = 0; k < x.numel(); ++k) {
      float res = 0;
      for (size_t j = 0; j < d1s.size(); ++j) res += rhos[j] * d1s[j].data()[k];
      if (d1_t) res += rho_t * d1_t->data()[k];
      out.data()[k] = cx * x.data()[k] - cm * m0.data()[k] - cb * res;
    }
    return out;
  }

  // What the predictor (at i, sigma_i -> sigma_{i+1}) and the corrector (at
  // i, sigma_{i-1} -> sigma_i) share: step size, ratios r_k, differences D1_k,
  // and the B(h) coefficients; earlier outputs sit at sigma_{s0 - k}.
  struct Terms {
    float s_t, s_s0, h_phi_1, b_h;
    std::vector<float> rks, b;
    std::vector<Tensor> d1s;
  };
  Terms terms(size_t t_index, size_t s0_index, int order) const {
    Terms r;
    r.s_t = sigmas_[t_index];
    r.s_s0 = sigmas_[s0_index];
    const float l_s0 = lambda_of(r.s_s0), h = lambda_of(r.s_t) - l_s0;
    const Tensor& m0 = outputs_.back();
    for (int k = 1; k < order; ++k) {
      const float rk = (lambda_of(sigmas_[s0_index - static_cast<size_t>(k)]) - l_s0) / h;
      r.rks.push_back(rk);
      r.d1s.push_back(lincomb(1.0f / rk, outputs_[outputs_.size() - 1 - k], -1.0f / rk, m0));
    }
    r.rks.push_back(1.0f);
    coefficients(h, order, &r.h_phi_1, &r.b_h, &r.b);
    return r;
  }

  // Solves sum_c rks[c]^row * rho_c = b[row] for the first n rows/columns.
  std::vector<float> rhos_for(const Terms& t, int n) const {
    std::vector<std::vector<float>> r(n, std::vector<float>(n));
    for (int row = 0; row < n; ++row)
      for (int c = 0; c < n; ++c) r[row][c] = std::pow(t.rks[c], static_cast<float>(row));
    return solve(r, std::vector<float>(t.b.begin(), t.b.begin() + n));
  }

  Tensor predictor(const Tensor& x, size_t i, int order) const {
    const Terms t = terms(i + 1, i, order);
    std::vector<float> rhos;
    if (order == 2) rhos = {0.5f};
    else if (order > 2) rhos = rhos_for(t, order - 1);
    return combine(x, t.s_t, t.s_s0, t.h_phi_1, t.b_h, outputs_.back(), t.d1s, rhos, nullptr, 0);
  }

  Tensor corrector(const Tensor& model_t, size_t i) const {
    const int order = this_order_;
    const Terms t = terms(i, i - 1, order);
    std::vector<float> rhos = order == 1 ? std::vector<float>{0.5f} : rhos_for(t, order);
    const Tensor& m0 = outputs_.back();
    Tensor d1_t = lincomb(1.0f, model_t, -1.0f, m0);
    const float rho_t = rhos.back();
    rhos.pop_back();
    return combine(last_sample_, t.s_t, t.s_s0, t.h_phi_1, t.b_h, m0, t.d1s, rhos, &d1_t, rho_t);
  }

  int order_ = 2, this_order_ = 1, lower_order_nums_ = 0;
  bool flow_ = false;
  bool bh2_ = true, predict_x0_ = true, lower_order_final_ = true;
  std::vector<int> disable_corrector_;
  std::vector<Tensor> outputs_;
  Tensor last_sample_;
};

}  // namespace

std::unique_ptr<Sampler> make_unipc_sampler(const SchedulerConfig& cfg, const SamplerOptions& o) {
  return std::make_unique<UniPcSampler>(cfg, o);
}

}  // namespace vg
