#pragma once
// Fused softmax + cross-entropy over the vocabulary on device memory; twin of
// kernels/cpu/softmax_ce.hpp (no probabilities stored: one log-sum-exp per row).
#include <cstdint>

namespace loom::kernels::cuda {

// losses[N] = logsumexp(logits[n,:]) - logits[n, targets[n]]; lse[N] saved for the backward.
// One block per row. targets must lie in [0, V) (checked on the host before the copy).
void softmax_ce_forward(float* losses, float* lse, const float* logits, const int32_t* targets,
                        int N, int V);

// dlogits[n,v] = (softmax(logits[n,:])[v] - [v == targets[n]]) * dloss; may alias logits.
void softmax_ce_backward(float* dlogits, const float* logits, const float* lse,
                         const int32_t* targets, float dloss, int N, int V);

}  // namespace loom::kernels::cuda
