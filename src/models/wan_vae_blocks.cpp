#include "models/wan_vae_blocks.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "backend/cpu/bf16.h"
#include "backend/cpu/ops.h"
#include "backend/cpu/vec_math.h"
#include "core/error.h"
#include "core/profile.h"
#include "models/blocks.h"

namespace vg::wan {

namespace {

int64_t frame_size(const Tensor& x) { return x.numel() / x.dim(0); }

// A non-owning [n, ...] view of memory that outlives the call using it.
Tensor view(const float* p, Shape shape) {
  return Tensor::wrap(std::move(shape),
                      std::shared_ptr<float>(std::shared_ptr<float>(), const_cast<float*>(p)));
}

}  // namespace

Tensor frames_of(const Tensor& x, int64_t begin, int64_t end) {
  Shape s = x.shape();
  s[0] = end - begin;
  return Tensor::from(s, x.data() + begin * frame_size(x));
}

Tensor concat_frames(const std::vector<Tensor>& parts) {
  Shape s = parts.at(0).shape();
  s[0] = 0;
  for (const Tensor& p : parts) s[0] += p.dim(0);
  Tensor out(s);
  float* o = out.data();
  for (const Tensor& p : parts) o = std::copy_n(p.data(), p.numel(), o);
  return out;
}

Tensor rms_norm(const Tensor& x, const Tensor& gamma, bool silu) {
  profile::Scope prof_("norm");
  const int64_t c = x.dim(-1), n = x.numel() / c;
  if (gamma.numel() != c) fail(ErrorCode::kInternal, "rms_norm: gamma size mismatch");
  Tensor out(x.shape());
  // F.normalize(x) * sqrt(C) * gamma: x / max(||x||, 1e-12), then one vector
  // affine (sqrt(C) * gamma folded: within an ulp of torch's two products)
  std::vector<float> a(static_cast<size_t>(c)), zero(static_cast<size_t>(c), 0.0f);
  const float scale = std::sqrt(static_cast<float>(c));
  for (int64_t k = 0; k < c; ++k) a[static_cast<size_t>(k)] = scale * gamma.data()[k];
  const float* xd = x.data();
  float* od = out.data();
#pragma omp parallel for
  for (int64_t i = 0; i < n; ++i) {
    const float* xi = xd + i * c;
    float* oi = od + i * c;
    double ss = 0;
    for (int64_t k = 0; k < c; ++k) ss += static_cast<double>(xi[k]) * xi[k];
    const float denom = std::max(static_cast<float>(std::sqrt(ss)), 1e-12f);
    for (int64_t k = 0; k < c; ++k) oi[k] = xi[k] / denom;
    vec::affine(oi, oi, c, a.data(), zero.data(), silu);
  }
  return out;
}

CausalConv3d::CausalConv3d(const WeightStore& w, const std::string& name, int64_t out, int64_t in, int64_t kt,
                           int64_t ks, int slot)
    : out_(out), kt_(kt), slot_(slot) {
  const Shape full{out, in, kt, ks, ks};
  const std::string wn = name + ".weight";
  w.check(wn, full);  // a missing or misshapen weight fails at load
  bias_ = w.has(name + ".bias") ? w.get(name + ".bias", {out}) : Tensor::zeros({out});
  auto store = w.shared();
  const int pad = static_cast<int>(ks / 2);
  for (int64_t k = 0; k < kt; ++k) {
    // Each tap's [out, in, ks, ks] slice, cut from the 5-D weight when the
    // convolution first runs.
    Conv2d::Source source = [store, wn, full, k](Tensor* f32, std::vector<uint16_t>* bf16) {
      const int64_t rows = full[0] * full[1], taps = full[2], kk = full[3] * full[4];
      if (f32) {
        const Tensor all = store->get(wn, full);
        Tensor t = Tensor::unpooled({full[0], full[1], full[3], full[4]});
        for (int64_t r = 0; r < rows; ++r)
          std::copy_n(all.data() + (r * taps + k) * kk, kk, t.data() + r * kk);
        *f32 = std::move(t);
      } else {
        const std::vector<uint16_t> all = store->get_bf16(wn, full);
        bf16->resize(static_cast<size_t>(rows * kk));
        for (int64_t r = 0; r < rows; ++r)
          std::copy_n(all.data() + (r * taps + k) * kk, kk, bf16->data() + r * kk);
      }
    };
    taps_.emplace_back(Shape{out, in, ks, ks}, std::move(source), Tensor(), 1, pad, pad, w.compute_bf16());
  }
}

Tensor CausalConv3d::run(const std::vector<const float*>& prefix, const Tensor& x, int stride) const {
  const int64_t np = static_cast<int64_t>(prefix.size()), h = x.dim(1), wd = x.dim(2), c = x.dim(3);
  const int64_t len = np + x.dim(0);
  if (len < kt_) fail(ErrorCode::kInternal, "causal conv: fewer frames than taps");
  const int64_t n_out = (len - kt_) / stride + 1, fin = h * wd * c, fout = h * wd * out_;
  Tensor out({n_out, h, wd, out_});
  const float* b = bias_.data();
  float* od = out.data();
  {
    profile::Scope prof_("elementwise");
#pragma omp parallel for
    for (int64_t p = 0; p < n_out * h * wd; ++p) std::copy_n(b, out_, od + p * out_);
  }

  // bf16 layers: the frames are converted once, not once per tap.
  const bool bf16 = taps_[0].bf16();
  uint16_t* xb = nullptr;
  uint16_t* pb = nullptr;
  if (bf16) {
    xb = bf16_scratch(1, x.numel());
    to_bf16(x.data(), xb, x.numel());
    pb = bf16_scratch(2, std::max<int64_t>(1, np) * fin);
    for (int64_t i = 0; i < np; ++i)
      if (prefix[i]) to_bf16(prefix[i], pb + i * fin, fin);
  }
  // frames [t0, t0+n) of the output += tap(input frames starting at f32/b16)
  auto accumulate = [&](const Conv2d& tap, const float* f32, const uint16_t* b16, int64_t n, int64_t t0) {
    Tensor acc = view(od + t0 * fout, {n, h, wd, out_});
    if (bf16)
      tap.forward_bf16_input(b16, n, h, wd, &acc);
    else
      tap.forward(view(f32, {n, h, wd, c}), &acc);
  };
  for (int64_t k = 0; k < kt_; ++k) {
    const Conv2d& tap = taps_[static_cast<size_t>(k)];
    for (int64_t t = 0; t < n_out;) {
      const int64_t idx = t * stride + k;
      if (idx < np) {  // a cached frame, or a zero one (nothing to add)
        if (prefix[idx]) accumulate(tap, prefix[idx], bf16 ? pb + idx * fin : nullptr, 1, t);
        ++t;
        continue;
      }
      // stride 1: the rest of the outputs read consecutive frames of x
      const int64_t xi = idx - np, n = stride == 1 ? n_out - t : 1;
      accumulate(tap, x.data() + xi * fin, bf16 ? xb + xi * fin : nullptr, n, t);
      t += n;
    }
  }
  return out;
}

Tensor CausalConv3d::forward(const Tensor& x, Pass& pass) const {
  if (slot_ < 0 || kt_ == 1) return run({}, x, 1);
  FrameCache& fc = pass.caches.at(static_cast<size_t>(slot_));
  const int64_t fin = frame_size(x), have = fc.frames.empty() ? 0 : fc.frames.dim(0), past = kt_ - 1;
  std::vector<const float*> prefix(static_cast<size_t>(past), nullptr);  // zeros before the first frame
  for (int64_t i = 0; i < have; ++i)
    prefix[static_cast<size_t>(past - have + i)] = fc.frames.data() + i * fin;
  Tensor y = run(prefix, x, 1);
  if (!pass.last) {  // keep the last `past` input frames of (cache ++ x)
    const int64_t total = have + x.dim(0), keep = std::min(past, total);
    Shape s = x.shape();
    s[0] = keep;
    Tensor kept(s);
    for (int64_t j = 0; j < keep; ++j) {
      const int64_t src = total - keep + j;
      const float* p = src < have ? fc.frames.data() + src * fin : x.data() + (src - have) * fin;
      std::copy_n(p, fin, kept.data() + j * fin);
    }
    fc.frames = std::move(kept);
  }
  return y;
}

ResidualBlock::ResidualBlock(const WeightStore& w, const std::string& p, int64_t in, int64_t out, int& slot) {
  gamma1_ = w.get(p + "norm1.gamma", {in});
  gamma2_ = w.get(p + "norm2.gamma", {out});
  conv1_ = CausalConv3d(w, p + "conv1", out, in, 3, 3, slot++);
  conv2_ = CausalConv3d(w, p + "conv2", out, out, 3, 3, slot++);
  if (in != out) shortcut_ = load_conv(w, p + "conv_shortcut", out, in, 1, 1, 0, 0);
}

Tensor ResidualBlock::forward(const Tensor& x, Pass& pass) const {
  Tensor h = conv1_.forward(rms_norm(x, gamma1_, true), pass);
  h = conv2_.forward(rms_norm(h, gamma2_, true), pass);
  if (shortcut_.loaded())
    shortcut_.forward(x, &h);
  else
    add_inplace(h, x);
  return h;
}

AttentionBlock::AttentionBlock(const WeightStore& w, const std::string& p, int64_t dim) {
  gamma_ = w.get(p + "norm.gamma", {dim});
  // to_qkv is one 1x1 conv; its three row blocks become q, k and v
  const Tensor qkv = w.get(p + "to_qkv.weight", {3 * dim, dim});
  const Tensor bias = w.get(p + "to_qkv.bias", {3 * dim});
  auto part = [&](int i) {
    return Linear(Tensor::from({dim, dim}, qkv.data() + i * dim * dim),
                  Tensor::from({dim}, bias.data() + i * dim), w.compute_bf16());
  };
  q_ = part(0);
  k_ = part(1);
  v_ = part(2);
  proj_ = load_linear(w, p + "proj", dim, dim);
}

Tensor AttentionBlock::forward(const Tensor& x) const {
  const int64_t t = x.dim(0), c = x.dim(3);
  const Tensor n = rms_norm(x, gamma_, false).reshape({t, x.dim(1) * x.dim(2), c});
  Tensor y = proj_.forward(attention(q_.forward(n), k_.forward(n), v_.forward(n), 1, false, q_.bf16()));
  y = y.reshape(x.shape());
  add_inplace(y, x);
  return y;
}

Resample::Resample(const WeightStore& w, const std::string& p, int64_t dim, ResampleMode mode, int& slot,
                   int64_t up_out)
    : mode_(mode), dim_(dim) {
  const bool up = mode == ResampleMode::kUp2d || mode == ResampleMode::kUp3d;
  // down: diffusers pads (0,1,0,1) and convolves with stride 2, no padding
  conv_ = up ? load_conv(w, p + "resample.1", up_out > 0 ? up_out : dim / 2, dim, 3, 1, 1, 1)
             : load_conv(w, p + "resample.1", dim, dim, 3, 2, 0, 1);
  if (mode == ResampleMode::kUp3d) {
    slot_ = slot++;
    time_conv_ = CausalConv3d(w, p + "time_conv", dim * 2, dim, 3, 1, slot_);
  } else if (mode == ResampleMode::kDown3d) {
    slot_ = slot++;
    time_conv_ = CausalConv3d(w, p + "time_conv", dim, dim, 3, 1, -1);  // stride 2, its cache handled here
  }
}

Tensor Resample::forward(const Tensor& x, Pass& pass) const {
  if (mode_ == ResampleMode::kUp2d || mode_ == ResampleMode::kUp3d) {
    Tensor frames = x;
    if (mode_ == ResampleMode::kUp3d) {
      FrameCache& fc = pass.caches.at(static_cast<size_t>(slot_));
      if (!fc.started) {
        fc.started = true;  // the very first chunk passes unchanged in time
      } else {
        // each frame becomes two: channels [0, C) then [C, 2C) of the time conv
        const Tensor y = time_conv_.forward(x, pass);
        const int64_t t = x.dim(0), px = x.dim(1) * x.dim(2), c = dim_;
        frames = Tensor({2 * t, x.dim(1), x.dim(2), c});
#pragma omp parallel for collapse(2)
        for (int64_t i = 0; i < t; ++i)
          for (int64_t p = 0; p < px; ++p)
            for (int64_t s = 0; s < 2; ++s)
              std::copy_n(y.data() + (i * px + p) * 2 * c + s * c, c,
                          frames.data() + ((2 * i + s) * px + p) * c);
      }
    }
    const Tensor up = upsample_nearest(frames, frames.dim(1) * 2, frames.dim(2) * 2);
    return conv_.forward(up);
  }
  Tensor y = conv_.forward(x);
  if (mode_ == ResampleMode::kDown2d) return y;
  FrameCache& fc = pass.caches.at(static_cast<size_t>(slot_));
  const int64_t t = y.dim(0);
  Tensor out;
  if (!fc.started) {  // the first chunk passes unchanged in time
    fc.started = true;
    out = y;
  } else {  // frames pair up: (previous last, f0, f1), (f1, f2, f3), ...
    out = time_conv_.run({fc.frames.data()}, y, 2);
  }
  if (!pass.last) fc.frames = frames_of(y, t - 1, t);
  return out;
}

}  // namespace vg::wan
