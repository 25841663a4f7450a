#pragma once
// Residual connection out = a + b.
#include <cstddef>

namespace loom::kernels {

// out[n] = a[n] + b[n]
template <typename T>
void residual_forward(T* out, const T* a, const T* b, size_t n);

// da[n] += dout[n]; db[n] += dout[n]. The model never materialises this: it keeps one gradient
// buffer for the residual stream and lets each branch's backward accumulate into it, which is
// this kernel fused away. It is kept as the reference the gradient check verifies that design
// against.
template <typename T>
void residual_backward(T* da, T* db, const T* dout, size_t n);

}  // namespace loom::kernels
