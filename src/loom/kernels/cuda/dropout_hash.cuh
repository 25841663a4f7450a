#pragma once
// The keep/drop decision of inverted dropout as a pure function of (seed, index): the same bits
// as kernels/cpu/dropout.cpp's dropout_mask (splitmix64 finaliser of seed + golden * (i + 1),
// keep iff its top 24 bits >= p * 2^24), so a device mask, or the attention kernel's mask made
// on the fly, equals the CPU's mask bit for bit (tests/cuda_elementwise_test.cpp compares them).
#include <cstdint>

namespace loom::kernels::cuda {

__host__ __device__ inline uint64_t dropout_threshold(float p) {
  return static_cast<uint64_t>(static_cast<double>(p) * 16777216.0);
}

__host__ __device__ inline bool dropout_keep(uint64_t seed, uint64_t index, uint64_t threshold) {
  uint64_t z = seed + 0x9e3779b97f4a7c15ULL * (index + 1);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  z ^= z >> 31;
  return (z >> 40) >= threshold;
}

}  // namespace loom::kernels::cuda
