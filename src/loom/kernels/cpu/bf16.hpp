#pragma once
// bfloat16 storage: the upper 16 bits of an IEEE float (8 exponent bits, 7 mantissa bits), so a
// conversion to float is a shift and the range equals float's. Used only for GEMM inputs under
// MatmulPrecision::kBF16; everything else stays float.
#include <bit>
#include <cstddef>
#include <cstdint>

namespace loom::kernels {

using bf16 = uint16_t;

// Round to nearest even (NaN inputs are not produced by training and are not special-cased).
inline bf16 to_bf16(float x) {
  const uint32_t u = std::bit_cast<uint32_t>(x);
  return static_cast<bf16>((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

inline float from_bf16(bf16 h) { return std::bit_cast<float>(static_cast<uint32_t>(h) << 16); }

// dst[rows, cols] (row stride dst_ld; 0: dense, cols) = bf16(src[rows, cols]) with src's row
// stride ld. Padding columns of dst are left as they are.
void convert_to_bf16(bf16* dst, const float* src, size_t rows, size_t cols, size_t ld,
                     size_t dst_ld = 0);

}  // namespace loom::kernels
