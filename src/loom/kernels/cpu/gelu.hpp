#pragma once
// GELU, tanh approximation (GPT-2's): 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
#include <cstddef>

namespace loom::kernels {

// out[n] = gelu(inp[n]); out may alias inp.
template <typename T>
void gelu_forward(T* out, const T* inp, size_t n);

// dinp[n] = dout[n] * gelu'(inp[n]); dinp may alias dout (the model does it in place).
template <typename T>
void gelu_backward(T* dinp, const T* inp, const T* dout, size_t n);

}  // namespace loom::kernels
