#include "loom/infer/cached_attention.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "loom/kernels/cpu/parallel.hpp"
#include "loom/kernels/cpu/vec_math.hpp"

namespace loom::infer {

void cached_attention_forward(float* out, const float* qkv, const std::vector<CachedRow>& rows,
                              int C, int H, size_t ld, std::vector<float>& scratch) {
  const int N = static_cast<int>(rows.size()), hs = C / H;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hs));
  int max_keys = 0;
  size_t work = 0;
  for (const CachedRow& r : rows) {
    max_keys = std::max(max_keys, r.n_keys);
    work += static_cast<size_t>(r.n_keys) * C;
  }
  const bool threads = kernels::worth_threads(work);
  const size_t per_thread = static_cast<size_t>(max_keys);
  const int n_threads = threads ? omp_get_max_threads() : 1;
  if (scratch.size() < per_thread * n_threads) scratch.resize(per_thread * n_threads);
#pragma omp parallel for schedule(dynamic, 4) if (threads)
  for (int task = 0; task < N * H; ++task) {
    const int n = task / H, h = task % H;
    const CachedRow& r = rows[n];
    float* s = scratch.data() + per_thread * (threads ? omp_get_thread_num() : 0);
    const float* q = qkv + static_cast<size_t>(n) * 3 * C + h * hs;
    float mx = -std::numeric_limits<float>::infinity();
    for (int j = 0; j < r.n_keys; ++j) {  // s[j] = q . k_j / sqrt(hs)
      const float* k = r.k + j * ld + h * hs;
      float dot = 0;
#pragma omp simd reduction(+ : dot)
      for (int i = 0; i < hs; ++i) dot += q[i] * k[i];
      s[j] = dot * scale;
      mx = std::max(mx, s[j]);
    }
    float sum = 0;
#pragma omp simd reduction(+ : sum)
    for (int j = 0; j < r.n_keys; ++j) {
      s[j] = kernels::exp_nonpositive(s[j] - mx);
      sum += s[j];
    }
    const float inv = 1.0f / sum;
    float* y = out + static_cast<size_t>(n) * C + h * hs;
    std::fill(y, y + hs, 0.0f);
    for (int j = 0; j < r.n_keys; ++j) {  // y = sum_j p_j v_j
      const float* v = r.v + j * ld + h * hs;
      const float p = s[j] * inv;
#pragma omp simd
      for (int i = 0; i < hs; ++i) y[i] += p * v[i];
    }
  }
}

}  // namespace loom::infer
