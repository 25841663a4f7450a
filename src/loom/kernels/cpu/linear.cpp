#include "loom/kernels/cpu/linear.hpp"
#include "loom/kernels/cpu/parallel.hpp"

#include <algorithm>
#include <cstddef>

#include "loom/kernels/cpu/matmul.hpp"

namespace loom::kernels {

template <typename T>
void linear_forward(T* out, const T* inp, const T* w, const T* bias, int N, int IC, int OC) {
  if (bias != nullptr) {
    // Seed the output with the bias and let the GEMM accumulate onto it (beta = 1).
#pragma omp parallel for schedule(static) if (worth_threads(static_cast<size_t>(N) * OC))
    for (int n = 0; n < N; ++n) std::copy(bias, bias + OC, out + static_cast<size_t>(n) * OC);
  }
  matmul<T>(false, false, N, OC, IC, T(1), inp, IC, w, OC, bias ? T(1) : T(0), out, OC,
            ConstOperand::kB);
}

namespace {

// dbias[OC] += sum over the N rows of dout[N,OC]
template <typename T>
void bias_backward(T* dbias, const T* dout, int N, int OC) {
  // Column blocks per thread: each thread owns its slice of dbias, so no reduction is needed and
  // the result does not depend on the thread count.
  constexpr int kBlock = 128;
#pragma omp parallel for schedule(static) if (worth_threads(static_cast<size_t>(N) * OC))
  for (int j0 = 0; j0 < OC; j0 += kBlock) {
    const int j1 = std::min(OC, j0 + kBlock);
    T acc[kBlock] = {};
    for (int n = 0; n < N; ++n) {
      const T* row = dout + static_cast<size_t>(n) * OC;
#pragma omp simd
      for (int j = j0; j < j1; ++j) acc[j - j0] += row[j];
    }
    for (int j = j0; j < j1; ++j) dbias[j] += acc[j - j0];
  }
}

}  // namespace

template <typename T>
void linear_backward(T* dinp, T* dw, T* dbias, const T* dout, const T* inp, const T* w, int N,
                     int IC, int OC) {
  // Both products read dout[N,OC]: under bf16 it is rounded once (when both run).
  if (dinp != nullptr && dw != nullptr) {
    const RoundedOnce<T> d(dout, N, OC, OC);
    matmul<T>(false, true, N, IC, OC, T(1), d, w, OC, T(0), dinp, IC, ConstOperand::kB);
    matmul<T>(true, false, IC, OC, N, T(1), inp, IC, d, T(1), dw, OC);
  } else if (dinp != nullptr) {
    matmul<T>(false, true, N, IC, OC, T(1), dout, OC, w, OC, T(0), dinp, IC, ConstOperand::kB);
  } else if (dw != nullptr) {
    matmul<T>(true, false, IC, OC, N, T(1), inp, IC, dout, OC, T(1), dw, OC);
  }
  if (dbias != nullptr) bias_backward(dbias, dout, N, OC);
}

#define LOOM_INSTANTIATE(T)                                                                    \
  template void linear_forward<T>(T*, const T*, const T*, const T*, int, int, int);           \
  template void linear_backward<T>(T*, T*, T*, const T*, const T*, const T*, int, int, int);
LOOM_INSTANTIATE(float)
LOOM_INSTANTIATE(double)
#undef LOOM_INSTANTIATE

}  // namespace loom::kernels
