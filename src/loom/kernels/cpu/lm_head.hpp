#pragma once
// Language-model head tied to the token embedding: logits = x @ wte^T. wte is [V, C] row-major,
// so both directions are plain GEMMs on the stored layout.
namespace loom::kernels {

// logits[N,V] = x[N,C] @ wte[V,C]^T
template <typename T>
void lm_head_forward(T* logits, const T* x, const T* wte, int N, int C, int V);

// dx[N,C] = dlogits[N,V] @ wte[V,C]   (overwritten; may be nullptr to skip)
// dwte[V,C] += dlogits^T @ x          (may be nullptr to skip)
template <typename T>
void lm_head_backward(T* dx, T* dwte, const T* dlogits, const T* x, const T* wte, int N, int C,
                      int V);

}  // namespace loom::kernels
