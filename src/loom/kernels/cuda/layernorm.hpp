#pragma once
// LayerNorm over the last dimension (eps 1e-5) on device memory; twin of
// kernels/cpu/layernorm.hpp.
namespace loom::kernels::cuda {

// out[N,C] = (inp - mean) * rstd * w[C] + b[C]; saves mean[N] and rstd[N] for the backward.
// One warp per row.
void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* w,
                       const float* b, int N, int C);

// dinp[N,C] += d(loss)/d(inp)   (accumulates: the residual stream's gradient)
// dw[C] += sum_n dout * xhat;  db[C] += sum_n dout
// dw/db are reduced through per-row-chunk partials in a fixed order: deterministic, no atomics.
void layernorm_backward(float* dinp, float* dw, float* db, const float* dout, const float* inp,
                        const float* w, const float* mean, const float* rstd, int N, int C);

}  // namespace loom::kernels::cuda
