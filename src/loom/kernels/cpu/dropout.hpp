#pragma once
// Inverted dropout: kept elements are scaled by 1/(1-p) so the expectation is unchanged.
// The mask is a pure function of (seed, index), so it is reproducible for any thread count;
// the model draws one seed per call site from its loom::Rng.
#include <cstddef>
#include <cstdint>

namespace loom::kernels {

// mask[i] = 1 with probability 1-p, else 0: element first + i of the seed's mask (a slice of a
// longer mask, for a rank that holds part of a sequence).
void dropout_mask(uint8_t* mask, size_t n, float p, uint64_t seed, size_t first = 0);

// out[n] = inp[n] * mask[n] / (1-p); out may alias inp.
template <typename T>
void dropout_forward(T* out, const T* inp, const uint8_t* mask, float p, size_t n);

// dinp[n] = dout[n] * mask[n] / (1-p); dinp may alias dout.
template <typename T>
void dropout_backward(T* dinp, const T* dout, const uint8_t* mask, float p, size_t n);

}  // namespace loom::kernels
