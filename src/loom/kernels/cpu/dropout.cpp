#include "loom/kernels/cpu/dropout.hpp"
#include "loom/kernels/cpu/parallel.hpp"

namespace loom::kernels {

namespace {
// splitmix64 finaliser: a good 64-bit mix of (seed, index).
inline uint64_t mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
}  // namespace

void dropout_mask(uint8_t* mask, size_t n, float p, uint64_t seed, size_t first) {
  // keep iff the top 24 bits, as a fraction of 2^24, are >= p.
  const uint64_t threshold = static_cast<uint64_t>(static_cast<double>(p) * 16777216.0);
#pragma omp parallel for schedule(static) if (worth_threads(n))
  for (size_t i = 0; i < n; ++i) {
    mask[i] = (mix(seed + 0x9e3779b97f4a7c15ULL * (first + i + 1)) >> 40) >= threshold ? 1 : 0;
  }
}

template <typename T>
void dropout_forward(T* out, const T* inp, const uint8_t* mask, float p, size_t n) {
  const T scale = T(1) / (T(1) - T(p));
#pragma omp parallel for simd schedule(static) if (worth_threads(n))
  for (size_t i = 0; i < n; ++i) out[i] = mask[i] ? inp[i] * scale : T(0);
}

template <typename T>
void dropout_backward(T* dinp, const T* dout, const uint8_t* mask, float p, size_t n) {
  dropout_forward(dinp, dout, mask, p, n);  // the map is diagonal: its transpose is itself
}

template void dropout_forward<float>(float*, const float*, const uint8_t*, float, size_t);
template void dropout_forward<double>(double*, const double*, const uint8_t*, float, size_t);
template void dropout_backward<float>(float*, const float*, const uint8_t*, float, size_t);
template void dropout_backward<double>(double*, const double*, const uint8_t*, float, size_t);

}  // namespace loom::kernels
