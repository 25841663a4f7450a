#include "loom/comm/reduce.hpp"

#include <cstring>

namespace loom::comm {

float bf16_to_float(uint16_t v) {
  const uint32_t bits = static_cast<uint32_t>(v) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t float_to_bf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  // Round to nearest even; NaNs stay NaN because their mantissa keeps a bit set in the top half
  // unless it is only in the low half, which this quiets by setting bit 6 of the result.
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

void sum_into(void* acc, const void* in, size_t count, DType dtype) {
  if (dtype == DType::F32) {
    float* __restrict a = static_cast<float*>(acc);
    const float* __restrict b = static_cast<const float*>(in);
    for (size_t i = 0; i < count; ++i) a[i] += b[i];
    return;
  }
  uint16_t* __restrict a = static_cast<uint16_t*>(acc);
  const uint16_t* __restrict b = static_cast<const uint16_t*>(in);
  for (size_t i = 0; i < count; ++i) a[i] = float_to_bf16(bf16_to_float(a[i]) + bf16_to_float(b[i]));
}

void scale(void* data, size_t count, DType dtype, float factor) {
  if (dtype == DType::F32) {
    float* a = static_cast<float*>(data);
    for (size_t i = 0; i < count; ++i) a[i] *= factor;
    return;
  }
  uint16_t* a = static_cast<uint16_t*>(data);
  for (size_t i = 0; i < count; ++i) a[i] = float_to_bf16(bf16_to_float(a[i]) * factor);
}

}  // namespace loom::comm
