#include "loom/optim/grad_clip.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

namespace loom {

double grad_sq_sum(const float* g, size_t n) { return grad_sq_sum(g, n, 0, 0); }

double grad_sq_sum(const float* g, size_t n, size_t skip_begin, size_t skip_end) {
  constexpr size_t kBlock = 1 << 16;
  const size_t blocks = (n + kBlock - 1) / kBlock;
  std::vector<double> partial(blocks, 0.0);
#pragma omp parallel for schedule(static)
  for (std::ptrdiff_t b = 0; b < static_cast<std::ptrdiff_t>(blocks); ++b) {
    const size_t lo = static_cast<size_t>(b) * kBlock, hi = std::min(n, lo + kBlock);
    double s = 0;
    for (size_t i = lo; i < std::min(hi, std::max(lo, skip_begin)); ++i)
      s += static_cast<double>(g[i]) * g[i];
    for (size_t i = std::max(lo, skip_end); i < hi; ++i) s += static_cast<double>(g[i]) * g[i];
    partial[b] = s;
  }
  double total = 0;
  for (double s : partial) total += s;
  return total;
}

float clip_scale(double norm, float max_norm) {
  return norm > max_norm ? static_cast<float>(max_norm / norm) : 1.0f;
}

bool clips_at(int64_t step, int64_t warmup_steps, bool clip_during_warmup) {
  return clip_during_warmup || step > warmup_steps;
}

}  // namespace loom
