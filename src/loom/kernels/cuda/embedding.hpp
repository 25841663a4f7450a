#pragma once
// Token + position embedding on device memory; twin of kernels/cpu/embedding.hpp. Token ids are
// checked on the host before they are copied to the device (kernels::check_tokens).
#include <cstdint>

namespace loom::kernels::cuda {

// out[B,T,C] = wte[tokens[b,t], :] + wpe[t, :]; tokens (B,T) in [0, V). wte [V,C], wpe [>=T, C].
void embedding_forward(float* out, const int32_t* tokens, const float* wte, const float* wpe, int B,
                       int Tn, int C);

// dwte[tokens[b,t], :] += dout[b,t,:];  dwpe[t,:] += sum_b dout[b,t,:]
// Deterministic (no atomics): each thread owns one channel and adds the positions in order.
void embedding_backward(float* dwte, float* dwpe, const float* dout, const int32_t* tokens, int B,
                        int Tn, int C);

}  // namespace loom::kernels::cuda
