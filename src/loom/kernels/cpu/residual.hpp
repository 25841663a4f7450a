#pragma once
// Residual connection out = a + b.
#include <cstddef>

namespace loom::kernels {

// out[n] = a[n] + b[n]
template <typename T>
void residual_forward(T* out, const T* a, const T* b, size_t n);

// There is no residual backward kernel: its gradient is dout for both inputs, so the model keeps
// one gradient buffer for the residual stream and lets each branch's backward accumulate into it
// (checked by the whole-model gradient check in gpt_test.cpp).

}  // namespace loom::kernels
