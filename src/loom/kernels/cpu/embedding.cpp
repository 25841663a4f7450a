#include "loom/kernels/cpu/embedding.hpp"
#include "loom/kernels/cpu/parallel.hpp"

#include <algorithm>
#include <cstddef>
#include <limits>

#include "loom/core/check.hpp"
#include "loom/kernels/cpu/vocab_parallel_embedding.hpp"

namespace loom::kernels {

void check_tokens(const int32_t* ids, int64_t n, int V, const char* what) {
  for (int64_t i = 0; i < n; ++i) {
    LOOM_CHECK(ids[i] >= 0 && ids[i] < V, what, "[", i, "] = ", ids[i],
               " is outside the vocabulary [0, ", V, ")");
  }
}

template <typename T>
void embedding_forward(T* out, const int32_t* tokens, const T* wte, const T* wpe, int B, int Tn,
                       int C) {
#pragma omp parallel for schedule(static) if (worth_threads(static_cast<size_t>(B) * Tn * C))
  for (int n = 0; n < B * Tn; ++n) {
    const T* te = wte + static_cast<size_t>(tokens[n]) * C;
    const T* pe = wpe + static_cast<size_t>(n % Tn) * C;
    T* o = out + static_cast<size_t>(n) * C;
#pragma omp simd
    for (int c = 0; c < C; ++c) o[c] = te[c] + pe[c];
  }
}

template <typename T>
void embedding_backward(T* dwte, T* dwpe, const T* dout, const int32_t* tokens, int B, int Tn,
                        int C) {
  // The whole vocabulary is the one slice that holds every token.
  vocab_parallel_embedding_backward(dwte, dwpe, dout, tokens, B, Tn, C, /*vocab_start=*/0,
                                    std::numeric_limits<int>::max());
}

template void embedding_forward<float>(float*, const int32_t*, const float*, const float*, int,
                                       int, int);
template void embedding_forward<double>(double*, const int32_t*, const double*, const double*,
                                        int, int, int);
template void embedding_backward<float>(float*, float*, const float*, const int32_t*, int, int,
                                        int);
template void embedding_backward<double>(double*, double*, const double*, const int32_t*, int,
                                         int, int);

}  // namespace loom::kernels
