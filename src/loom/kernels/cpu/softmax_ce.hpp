#pragma once
// Fused softmax + cross-entropy over the vocabulary. The probabilities are never stored: the
// forward keeps one log-sum-exp per row and the backward turns the logits into dlogits in place,
// so the (N, V) buffer (200 MB for gpt2-small at B*T = 1024) is read/written once per direction.
#include <cstdint>

namespace loom::kernels {

// losses[N] = logsumexp(logits[n,:]) - logits[n, targets[n]]; lse[N] saved for the backward.
// Numerically stable (max subtracted). targets must lie in [0, V).
template <typename T>
void softmax_ce_forward(T* losses, T* lse, const T* logits, const int32_t* targets, int N, int V);

// dlogits[n,v] = (softmax(logits[n,:])[v] - [v == targets[n]]) * dloss, where dloss is
// d(loss)/d(losses[n]) (loss_scale / N for a mean). dlogits may alias logits.
template <typename T>
void softmax_ce_backward(T* dlogits, const T* logits, const T* lse, const int32_t* targets,
                         T dloss, int N, int V);

}  // namespace loom::kernels
