#include "loom/kernels/cpu/softmax_ce.hpp"
#include "loom/kernels/cpu/parallel.hpp"

#include <cmath>
#include <cstddef>
#include <limits>

#include "loom/kernels/cpu/vec_math.hpp"

namespace loom::kernels {

template <typename T>
void softmax_ce_forward(T* losses, T* lse, const T* logits, const int32_t* targets, int N, int V) {
#pragma omp parallel for schedule(static) if (worth_threads(static_cast<size_t>(N) * V))
  for (int n = 0; n < N; ++n) {
    const T* row = logits + static_cast<size_t>(n) * V;
    T mx = -std::numeric_limits<T>::infinity();
#pragma omp simd reduction(max : mx)
    for (int v = 0; v < V; ++v) mx = row[v] > mx ? row[v] : mx;
    T sum = 0;
#pragma omp simd reduction(+ : sum)
    for (int v = 0; v < V; ++v) sum += exp_nonpos<T>(row[v] - mx);
    lse[n] = mx + std::log(sum);
    losses[n] = (mx - row[targets[n]]) + std::log(sum);  // not lse - logit: exact for big logits
  }
}

template <typename T>
void softmax_ce_backward(T* dlogits, const T* logits, const T* lse, const int32_t* targets,
                         T dloss, int N, int V) {
#pragma omp parallel for schedule(static) if (worth_threads(static_cast<size_t>(N) * V))
  for (int n = 0; n < N; ++n) {
    const T* row = logits + static_cast<size_t>(n) * V;
    T* drow = dlogits + static_cast<size_t>(n) * V;
    const T m = lse[n];
#pragma omp simd
    for (int v = 0; v < V; ++v) drow[v] = exp_nonpos<T>(row[v] - m) * dloss;
    drow[targets[n]] -= dloss;
  }
}

template void softmax_ce_forward<float>(float*, float*, const float*, const int32_t*, int, int);
template void softmax_ce_forward<double>(double*, double*, const double*, const int32_t*, int,
                                         int);
template void softmax_ce_backward<float>(float*, const float*, const float*, const int32_t*,
                                         float, int, int);
template void softmax_ce_backward<double>(double*, const double*, const double*, const int32_t*,
                                          double, int, int);

}  // namespace loom::kernels
