#pragma once
// Inverted dropout on device memory; twin of kernels/cpu/dropout.hpp (same masks for the same
// seed: see dropout_hash.cuh). T = float or __nv_bfloat16.
#include <cstddef>
#include <cstdint>

namespace loom::kernels::cuda {

// mask[n] = 1 with probability 1-p, else 0.
void dropout_mask(uint8_t* mask, size_t n, float p, uint64_t seed);

// out[n] = inp[n] * mask[n] / (1-p); out may alias inp.
template <typename T>
void dropout_forward(T* out, const T* inp, const uint8_t* mask, float p, size_t n);

// dinp[n] = dout[n] * mask[n] / (1-p); dinp may alias dout.
template <typename T>
void dropout_backward(T* dinp, const T* dout, const uint8_t* mask, float p, size_t n);

}  // namespace loom::kernels::cuda
