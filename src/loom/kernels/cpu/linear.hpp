#pragma once
// Fully connected layer in Hugging Face Conv1D layout: the weight is stored [in, out], so every
// GEMM below runs on the stored layouts without copies or transposed temporaries.
#include <cstdint>

namespace loom::kernels {

// out[N,OC] = inp[N,IC] @ w[IC,OC] + bias[OC]   (bias may be nullptr)
template <typename T>
void linear_forward(T* out, const T* inp, const T* w, const T* bias, int N, int IC, int OC);

// dinp[N,IC]  = dout[N,OC] @ w^T        (overwritten; may be nullptr to skip)
// dw[IC,OC]  += inp^T @ dout            (dw may be nullptr to skip)
// dbias[OC]  += sum over rows of dout    (dbias may be nullptr)
template <typename T>
void linear_backward(T* dinp, T* dw, T* dbias, const T* dout, const T* inp, const T* w, int N,
                     int IC, int OC);

}  // namespace loom::kernels
