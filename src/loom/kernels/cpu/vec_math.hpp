#pragma once
// Element-wise math that the compiler can vectorise inside `#pragma omp simd` loops. glibc's expf
// is a scalar call (its vector variants need -ffast-math), and the softmax over 50257 classes
// alone evaluates ~100M exponentials per step, so float gets a polynomial exp (Cephes expf,
// relative error ~1e-7); double keeps std::exp/std::tanh, so gradient checks run against the
// exact functions.
//
// Every caller needs exp only of arguments <= 0 (x - max in a softmax, -2|u| in tanh), which
// removes the overflow side. The underflow side is handled with integer masks, not float
// comparisons: without -fno-trapping-math GCC will not if-convert a float compare, and a branch
// in the loop body stops vectorisation.
#include <bit>
#include <cmath>
#include <cstdint>

namespace loom::kernels {

// exp(x) for x in [-2^22, 0] (a little above 0 is fine too); 0 below about -87.3.
inline float exp_nonpositive(float x) {
  // n = round(x / ln2) by the 1.5 * 2^23 trick; its low mantissa bits hold n as an integer.
  const float shifted = x * 1.44269504088896341f + 12582912.0f;
  const float n = shifted - 12582912.0f;
  const int32_t ni = static_cast<int32_t>(std::bit_cast<uint32_t>(shifted) - 0x4B400000u);
  const float r = x - n * 0.693359375f + n * 2.12194440e-4f;  // Cody-Waite: x - n ln2
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t k = ni < -126 ? -126 : ni;  // keep 2^k a normal float
  const float result = p * std::bit_cast<float>((k + 127) << 23);
  const int32_t keep = -static_cast<int32_t>(ni >= -126);  // all ones, or 0 to flush to 0
  return std::bit_cast<float>(std::bit_cast<int32_t>(result) & keep);
}

template <typename T>
inline T exp_nonpos(T x);
template <>
inline float exp_nonpos<float>(float x) { return exp_nonpositive(x); }
template <>
inline double exp_nonpos<double>(double x) { return std::exp(x); }

// tanh(u) = sign(u) (1 - e) / (1 + e) with e = exp(-2|u|) in (0, 1].
template <typename T>
inline T vtanh(T u) {
  const T e = exp_nonpos<T>(T(-2) * std::fabs(u));
  return std::copysign((T(1) - e) / (T(1) + e), u);
}
template <>
inline double vtanh<double>(double u) { return std::tanh(u); }

}  // namespace loom::kernels
