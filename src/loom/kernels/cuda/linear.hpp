#pragma once
// Fully connected layer (Hugging Face Conv1D layout: weight [in, out]) and the tied LM head on
// device memory; twins of kernels/cpu/linear.hpp and lm_head.hpp. The products are cuBLASLt
// matmuls on the stored layouts (matmul.hpp, f32 math as its F32MathScope says).
namespace loom::kernels::cuda {

// out[N,OC] = inp[N,IC] @ w[IC,OC] + bias[OC]   (bias may be nullptr)
void linear_forward(float* out, const float* inp, const float* w, const float* bias, int N, int IC,
                    int OC);

// dinp[N,IC]  = dout[N,OC] @ w^T        (overwritten; may be nullptr to skip)
// dw[IC,OC]  += inp^T @ dout
// dbias[OC]  += sum over rows of dout    (dbias may be nullptr; deterministic, no atomics)
void linear_backward(float* dinp, float* dw, float* dbias, const float* dout, const float* inp,
                     const float* w, int N, int IC, int OC);

// logits[N,V] = x[N,C] @ wte[V,C]^T
void lm_head_forward(float* logits, const float* x, const float* wte, int N, int C, int V);

// dx[N,C] = dlogits[N,V] @ wte[V,C]   (overwritten)
// dwte[V,C] += dlogits^T @ x
void lm_head_backward(float* dx, float* dwte, const float* dlogits, const float* x,
                      const float* wte, int N, int C, int V);

}  // namespace loom::kernels::cuda
