#pragma once
// Token + position embedding.
#include <cstdint>

namespace loom::kernels {

// out[B,T,C] = wte[tokens[b,t], :] + wpe[t, :]; tokens (B,T) must lie in [0, V) (the caller
// checks: see check_tokens). wte [V,C], wpe [>=T, C].
template <typename T>
void embedding_forward(T* out, const int32_t* tokens, const T* wte, const T* wpe, int B, int Tn,
                       int C);

// dwte[tokens[b,t], :] += dout[b,t,:];  dwpe[t,:] += sum_b dout[b,t,:]
template <typename T>
void embedding_backward(T* dwte, T* dwpe, const T* dout, const int32_t* tokens, int B, int Tn,
                        int C);

// Throws loom::Error naming `what` (e.g. "tokens") if an id is outside [0, V).
void check_tokens(const int32_t* ids, int64_t n, int V, const char* what);

}  // namespace loom::kernels
