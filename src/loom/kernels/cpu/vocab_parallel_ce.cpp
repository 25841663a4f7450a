#include "loom/kernels/cpu/vocab_parallel_ce.hpp"

#include <cmath>
#include <cstddef>
#include <limits>

#include "loom/kernels/cpu/parallel.hpp"
#include "loom/kernels/cpu/vec_math.hpp"

namespace loom::kernels {

template <typename T>
void vocab_parallel_row_max(T* row_max, const T* logits, int N, const VocabSlice& s) {
#pragma omp parallel for schedule(static) if (worth_threads(static_cast<size_t>(N) * s.Vl))
  for (int n = 0; n < N; ++n) {
    const T* row = logits + static_cast<size_t>(n) * s.Vl;
    T mx = -std::numeric_limits<T>::infinity();
#pragma omp simd reduction(max : mx)
    for (int v = 0; v < s.valid; ++v) mx = row[v] > mx ? row[v] : mx;
    row_max[n] = mx;
  }
}

template <typename T>
void vocab_parallel_sum_exp(T* stats, const T* logits, const T* row_max, const int32_t* targets,
                            int N, const VocabSlice& s) {
#pragma omp parallel for schedule(static) if (worth_threads(static_cast<size_t>(N) * s.Vl))
  for (int n = 0; n < N; ++n) {
    const T* row = logits + static_cast<size_t>(n) * s.Vl;
    const T mx = row_max[n];
    T sum = 0;
#pragma omp simd reduction(+ : sum)
    for (int v = 0; v < s.valid; ++v) sum += exp_nonpos<T>(row[v] - mx);
    stats[n] = sum;
    const int local = targets[n] - s.vocab_start;
    stats[N + n] = local >= 0 && local < s.valid ? row[local] : T(0);
  }
}

template <typename T>
void vocab_parallel_ce_finish(T* losses, T* lse, const T* row_max, const T* stats, int N) {
  for (int n = 0; n < N; ++n) {
    const T log_sum = std::log(stats[n]);
    lse[n] = row_max[n] + log_sum;
    losses[n] = (row_max[n] - stats[N + n]) + log_sum;
  }
}

template <typename T>
void vocab_parallel_ce_backward(T* dlogits, const T* logits, const T* lse, const int32_t* targets,
                                T dloss, int N, const VocabSlice& s) {
#pragma omp parallel for schedule(static) if (worth_threads(static_cast<size_t>(N) * s.Vl))
  for (int n = 0; n < N; ++n) {
    const T* row = logits + static_cast<size_t>(n) * s.Vl;
    T* drow = dlogits + static_cast<size_t>(n) * s.Vl;
    const T m = lse[n];
#pragma omp simd
    for (int v = 0; v < s.valid; ++v) drow[v] = exp_nonpos<T>(row[v] - m) * dloss;
    for (int v = s.valid; v < s.Vl; ++v) drow[v] = T(0);
    const int local = targets[n] - s.vocab_start;
    if (local >= 0 && local < s.valid) drow[local] -= dloss;
  }
}

#define LOOM_INSTANTIATE(T)                                                                   \
  template void vocab_parallel_row_max<T>(T*, const T*, int, const VocabSlice&);             \
  template void vocab_parallel_sum_exp<T>(T*, const T*, const T*, const int32_t*, int,       \
                                          const VocabSlice&);                                \
  template void vocab_parallel_ce_finish<T>(T*, T*, const T*, const T*, int);                \
  template void vocab_parallel_ce_backward<T>(T*, const T*, const T*, const int32_t*, T, int, \
                                              const VocabSlice&);
LOOM_INSTANTIATE(float)
LOOM_INSTANTIATE(double)
#undef LOOM_INSTANTIATE

}  // namespace loom::kernels
