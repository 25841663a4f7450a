#pragma once
// Residual connection out = a + b on device memory; twin of kernels/cpu/residual.hpp (which also
// explains why there is no residual backward kernel). T = float or __nv_bfloat16.
#include <cstddef>

namespace loom::kernels::cuda {

// out[n] = a[n] + b[n]
template <typename T>
void residual_forward(T* out, const T* a, const T* b, size_t n);

}  // namespace loom::kernels::cuda
