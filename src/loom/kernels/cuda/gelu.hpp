#pragma once
// GELU, tanh approximation (GPT-2's), on device memory; twin of kernels/cpu/gelu.hpp.
// T = float or __nv_bfloat16 (computed in float).
#include <cstddef>

namespace loom::kernels::cuda {

// out[n] = gelu(inp[n]); out may alias inp.
template <typename T>
void gelu_forward(T* out, const T* inp, size_t n);

// dinp[n] = dout[n] * gelu'(inp[n]); dinp may alias dout.
template <typename T>
void gelu_backward(T* dinp, const T* inp, const T* dout, size_t n);

}  // namespace loom::kernels::cuda
