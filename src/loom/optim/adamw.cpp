#include "loom/optim/adamw.hpp"

#include <algorithm>
#include <cmath>

#include "loom/core/check.hpp"

namespace loom {

AdamW::AdamW(const std::vector<ParamInfo>& layout, const AdamWParams& hp, size_t begin, size_t end)
    : hp_(hp), begin_(begin) {
  size_t total = 0;
  for (const auto& p : layout) total = std::max(total, p.offset + p.numel);
  end_ = std::min(end, total);
  LOOM_CHECK(begin_ <= end_, "AdamW: range [", begin, ", ", end, ") is outside the ", total,
             " parameters");
  LOOM_CHECK(hp.beta1 >= 0 && hp.beta1 < 1, "beta1 must be in [0, 1), got ", hp.beta1);
  LOOM_CHECK(hp.beta2 >= 0 && hp.beta2 < 1, "beta2 must be in [0, 1), got ", hp.beta2);
  LOOM_CHECK(hp.eps > 0, "eps must be > 0, got ", hp.eps);
  LOOM_CHECK(hp.weight_decay >= 0, "weight_decay must be >= 0, got ", hp.weight_decay);
  for (const auto& p : layout) {
    const size_t b = std::max(p.offset, begin_), e = std::min(p.offset + p.numel, end_);
    if (b >= e) continue;
    if (!segments_.empty() && segments_.back().end == b && segments_.back().decay == p.weight_decay)
      segments_.back().end = e;  // merge neighbours with the same mask: fewer, longer loops
    else
      segments_.push_back({b, e, p.weight_decay});
  }
  m_.assign(end_ - begin_, 0.0f);
  v_.assign(end_ - begin_, 0.0f);
}

void AdamW::set_step_count(int64_t t) {
  LOOM_CHECK(t >= 0, "AdamW step count must be >= 0, got ", t);
  t_ = t;
}

void AdamW::step(float* params, const float* grads, float lr, float grad_scale) {
  ++t_;
  const float b1 = hp_.beta1, b2 = hp_.beta2, eps = hp_.eps;
  // Bias corrections as reciprocals: one multiply per element instead of a division.
  const float inv_c1 = 1.0f / (1.0f - static_cast<float>(std::pow(static_cast<double>(b1), t_)));
  const float inv_c2 = 1.0f / (1.0f - static_cast<float>(std::pow(static_cast<double>(b2), t_)));
  for (const Segment& s : segments_) {
    const float wd = s.decay ? hp_.weight_decay : 0.0f;
    float* p = params + s.begin;
    const float* gr = grads + s.begin;
    float* m = m_.data() + (s.begin - begin_);
    float* v = v_.data() + (s.begin - begin_);
    const auto n = static_cast<std::ptrdiff_t>(s.end - s.begin);
    // Element-wise: the result does not depend on the number of threads.
#pragma omp parallel for simd schedule(static)
    for (std::ptrdiff_t i = 0; i < n; ++i) {
      const float g = gr[i] * grad_scale;
      const float mi = b1 * m[i] + (1.0f - b1) * g;
      const float vi = b2 * v[i] + (1.0f - b2) * g * g;
      m[i] = mi;
      v[i] = vi;
      const float mhat = mi * inv_c1, vhat = vi * inv_c2;
      p[i] -= lr * (mhat / (std::sqrt(vhat) + eps) + wd * p[i]);
    }
  }
}

}  // namespace loom
