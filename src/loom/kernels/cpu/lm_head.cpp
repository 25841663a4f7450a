#include "loom/kernels/cpu/lm_head.hpp"

#include "loom/kernels/cpu/matmul.hpp"

namespace loom::kernels {

template <typename T>
void lm_head_forward(T* logits, const T* x, const T* wte, int N, int C, int V) {
  matmul<T>(false, true, N, V, C, T(1), x, C, wte, C, T(0), logits, V, ConstOperand::kB);
}

template <typename T>
void lm_head_backward(T* dx, T* dwte, const T* dlogits, const T* x, const T* wte, int N, int C,
                      int V) {
  // Both products read dlogits[N,V]: under bf16 it is rounded once, with padded rows.
  const RoundedOnce<T> dl(dlogits, N, V, V);
  if (dx != nullptr) {
    matmul<T>(false, false, N, C, V, T(1), dl, wte, C, T(0), dx, C, ConstOperand::kB);
  }
  if (dwte != nullptr) matmul<T>(true, false, V, C, N, T(1), dl, x, C, T(1), dwte, C);
}

template void lm_head_forward<float>(float*, const float*, const float*, int, int, int);
template void lm_head_forward<double>(double*, const double*, const double*, int, int, int);
template void lm_head_backward<float>(float*, float*, const float*, const float*, const float*,
                                      int, int, int);
template void lm_head_backward<double>(double*, double*, const double*, const double*,
                                       const double*, int, int, int);

}  // namespace loom::kernels
