#include "loom/kernels/cpu/gelu.hpp"
#include "loom/kernels/cpu/parallel.hpp"

#include "loom/kernels/cpu/vec_math.hpp"

namespace loom::kernels {

namespace {
constexpr double kSqrt2OverPi = 0.7978845608028654;
constexpr double kCubic = 0.044715;
}  // namespace

template <typename T>
void gelu_forward(T* out, const T* inp, size_t n) {
#pragma omp parallel for simd schedule(static) if (worth_threads(n))
  for (size_t i = 0; i < n; ++i) {
    const T x = inp[i];
    const T u = T(kSqrt2OverPi) * (x + T(kCubic) * x * x * x);
    out[i] = T(0.5) * x * (T(1) + vtanh<T>(u));
  }
}

template <typename T>
void gelu_backward(T* dinp, const T* inp, const T* dout, size_t n) {
#pragma omp parallel for simd schedule(static) if (worth_threads(n))
  for (size_t i = 0; i < n; ++i) {
    const T x = inp[i];
    const T u = T(kSqrt2OverPi) * (x + T(kCubic) * x * x * x);
    const T th = vtanh<T>(u);
    const T du = T(kSqrt2OverPi) * (T(1) + T(3 * kCubic) * x * x);
    const T grad = T(0.5) * (T(1) + th) + T(0.5) * x * (T(1) - th * th) * du;
    dinp[i] = dout[i] * grad;
  }
}

template void gelu_forward<float>(float*, const float*, size_t);
template void gelu_forward<double>(double*, const double*, size_t);
template void gelu_backward<float>(float*, const float*, const float*, size_t);
template void gelu_backward<double>(double*, const double*, const double*, size_t);

}  // namespace loom::kernels
