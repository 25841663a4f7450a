#pragma once
// LayerNorm over the last dimension (eps 1e-5, as GPT-2).
namespace loom::kernels {

// out[N,C] = (inp - mean) * rstd * w[C] + b[C]; saves mean[N] and rstd[N] for the backward.
template <typename T>
void layernorm_forward(T* out, T* mean, T* rstd, const T* inp, const T* w, const T* b, int N,
                       int C);

// Fused backward (one pass over each row after its two reductions):
// dinp[N,C] += d(loss)/d(inp)   (accumulates: the residual stream's gradient)
// dw[C] += sum_n dout * xhat;  db[C] += sum_n dout
template <typename T>
void layernorm_backward(T* dinp, T* dw, T* db, const T* dout, const T* inp, const T* w,
                        const T* mean, const T* rstd, int N, int C);

}  // namespace loom::kernels
