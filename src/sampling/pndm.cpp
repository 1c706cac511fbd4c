// PNDMScheduler with skip_prk_steps (PLMS, diffusers 0.27): linear multistep
// on epsilon with the second timestep evaluated twice (N steps = N+1 calls).
#include <cmath>

#include "sampling/sampler_registry.h"
#include "sampling/sigma_schedules.h"

namespace vg {

namespace {

class PlmsSampler : public Sampler {
 public:
  PlmsSampler(const SchedulerConfig& cfg, const SamplerOptions& o) : cfg_(cfg), ac_(alphas_cumprod(cfg)) {
    final_ac_ = cfg.set_alpha_to_one ? 1.0f : ac_[0];
    if (is_spacing_schedule(o.schedule)) schedule_ = o.schedule;
  }
  std::string name() const override { return "plms"; }

  void set_timesteps(int steps) override {
    steps_ = steps;
    const int n = cfg_.num_train_timesteps;
    const std::string spacing = is_spacing_schedule(schedule_) ? schedule_ : cfg_.spacing("leading");
    std::vector<float> asc;  // ascending, as diffusers' _timesteps
    if (spacing == "linspace") {
      for (int i = 0; i < steps; ++i)
        asc.push_back(std::nearbyint(steps == 1 ? 0.0 : (n - 1) * static_cast<double>(i) / (steps - 1)));
    } else if (spacing == "leading") {
      for (int i = 0; i < steps; ++i) asc.push_back(static_cast<float>(i * (n / steps) + cfg_.steps_offset));
    } else {
      const double ratio = static_cast<double>(n) / steps;
      for (double t = n; t > 0 && static_cast<int>(asc.size()) < steps; t -= ratio)
        asc.insert(asc.begin(), static_cast<float>(std::nearbyint(t)) - 1.0f);
    }
    // plms_timesteps = concat(_t[:-1], _t[-2:-1], _t[-1:])[::-1]
    std::vector<float> t(asc.begin(), asc.end() - 1);
    if (asc.size() >= 2) t.push_back(asc[asc.size() - 2]);
    t.push_back(asc.back());
    timesteps_.assign(t.rbegin(), t.rend());
    ets_.clear();
    counter_ = 0;
    cur_sample_ = Tensor();
  }

  Tensor step(const Tensor& m, size_t i, const Tensor& sample_in, Rng&) override {
    const int ratio = cfg_.num_train_timesteps / steps_;
    int t = static_cast<int>(timesteps_[i]);
    int prev_t = t - ratio;
    if (counter_ != 1) {
      if (ets_.size() > 3) ets_.erase(ets_.begin());
      ets_.push_back(m);
    } else {
      prev_t = t;
      t = t + ratio;
    }
    Tensor e;
    Tensor sample = sample_in;
    const size_t n = ets_.size();
    if (n == 1 && counter_ == 0) {
      e = m;
      cur_sample_ = sample_in;
    } else if (n == 1 && counter_ == 1) {
      e = lincomb2(0.5f, m, 0.5f, ets_.back());
      sample = cur_sample_;
      cur_sample_ = Tensor();
    } else if (n == 2) {
      e = lincomb2(1.5f, ets_[1], -0.5f, ets_[0]);
    } else if (n == 3) {
      e = Tensor(m.shape());
      for (int64_t k = 0; k < m.numel(); ++k)
        e.data()[k] = (23 * ets_[2].data()[k] - 16 * ets_[1].data()[k] + 5 * ets_[0].data()[k]) / 12;
    } else {
      e = Tensor(m.shape());
      for (int64_t k = 0; k < m.numel(); ++k)
        e.data()[k] = (1.0f / 24) * (55 * ets_[3].data()[k] - 59 * ets_[2].data()[k] + 37 * ets_[1].data()[k] -
                                     9 * ets_[0].data()[k]);
    }
    ++counter_;
    return prev_sample(sample, t, prev_t, e);
  }

  Tensor add_noise(const Tensor& x0, const Tensor& noise, size_t i) const override {
    const float a = ac_.at(static_cast<size_t>(timesteps_[i]));
    return lincomb2(std::sqrt(a), x0, std::sqrt(1.0f - a), noise);
  }

 private:
  static Tensor lincomb2(float a, const Tensor& x, float b, const Tensor& y) {
    Tensor out(x.shape());
    for (int64_t k = 0; k < x.numel(); ++k) out.data()[k] = a * x.data()[k] + b * y.data()[k];
    return out;
  }

  Tensor prev_sample(const Tensor& x, int t, int prev_t, const Tensor& e_in) const {
    const float a_t = ac_.at(static_cast<size_t>(t));
    const float a_prev = prev_t >= 0 ? ac_.at(static_cast<size_t>(prev_t)) : final_ac_;
    const float b_t = 1 - a_t, b_prev = 1 - a_prev;
    Tensor e = cfg_.prediction_type == "v_prediction" ? lincomb2(std::sqrt(a_t), e_in, std::sqrt(b_t), x) : e_in;
    const float sample_coeff = std::sqrt(a_prev / a_t);
    const float denom = a_t * std::sqrt(b_prev) + std::sqrt(a_t * b_t * a_prev);
    Tensor out(x.shape());
    for (int64_t k = 0; k < x.numel(); ++k)
      out.data()[k] = sample_coeff * x.data()[k] - (a_prev - a_t) * e.data()[k] / denom;
    return out;
  }

  SchedulerConfig cfg_;
  std::vector<float> ac_;
  float final_ac_ = 1.0f;
  int steps_ = 0, counter_ = 0;
  std::vector<Tensor> ets_;
  Tensor cur_sample_;
};

}  // namespace

std::unique_ptr<Sampler> make_plms_sampler(const SchedulerConfig& cfg, const SamplerOptions& o) {
  return std::make_unique<PlmsSampler>(cfg, o);
}

}  // namespace vg
