#include "loom/kernels/cpu/vocab_parallel_embedding.hpp"

#include <algorithm>
#include <cstddef>

#include "loom/kernels/cpu/parallel.hpp"

namespace loom::kernels {

template <typename T>
void vocab_parallel_embedding_forward(T* out, const int32_t* tokens, const T* wte, int N, int C,
                                      int vocab_start, int rows) {
#pragma omp parallel for schedule(static) if (worth_threads(static_cast<size_t>(N) * C))
  for (int n = 0; n < N; ++n) {
    T* o = out + static_cast<size_t>(n) * C;
    const int local = tokens[n] - vocab_start;
    if (local < 0 || local >= rows) {
      std::fill(o, o + C, T(0));
      continue;
    }
    const T* te = wte + static_cast<size_t>(local) * C;
#pragma omp simd
    for (int c = 0; c < C; ++c) o[c] = te[c];
  }
}

template <typename T>
void add_position_embedding(T* out, const T* wpe, int B, int Tn, int C) {
#pragma omp parallel for schedule(static) if (worth_threads(static_cast<size_t>(B) * Tn * C))
  for (int n = 0; n < B * Tn; ++n) {
    const T* pe = wpe + static_cast<size_t>(n % Tn) * C;
    T* o = out + static_cast<size_t>(n) * C;
#pragma omp simd
    for (int c = 0; c < C; ++c) o[c] += pe[c];
  }
}

template <typename T>
void vocab_parallel_embedding_backward(T* dwte, T* dwpe, const T* dout, const int32_t* tokens,
                                       int B, int Tn, int C, int vocab_start, int rows) {
  // Threads own column slices, so repeated tokens never race and the sums are deterministic.
  constexpr int kBlock = 64;
#pragma omp parallel for schedule(static) if (worth_threads(static_cast<size_t>(B) * Tn * C))
  for (int c0 = 0; c0 < C; c0 += kBlock) {
    const int c1 = std::min(C, c0 + kBlock);
    for (int n = 0; n < B * Tn; ++n) {
      const T* d = dout + static_cast<size_t>(n) * C;
      T* pe = dwpe + static_cast<size_t>(n % Tn) * C;
#pragma omp simd
      for (int c = c0; c < c1; ++c) pe[c] += d[c];
      const int local = tokens[n] - vocab_start;
      if (local < 0 || local >= rows) continue;
      T* te = dwte + static_cast<size_t>(local) * C;
#pragma omp simd
      for (int c = c0; c < c1; ++c) te[c] += d[c];
    }
  }
}

#define LOOM_INSTANTIATE(T)                                                                      \
  template void vocab_parallel_embedding_forward<T>(T*, const int32_t*, const T*, int, int, int, \
                                                    int);                                        \
  template void add_position_embedding<T>(T*, const T*, int, int, int);                          \
  template void vocab_parallel_embedding_backward<T>(T*, T*, const T*, const int32_t*, int, int, \
                                                     int, int, int);
LOOM_INSTANTIATE(float)
LOOM_INSTANTIATE(double)
#undef LOOM_INSTANTIATE

}  // namespace loom::kernels
