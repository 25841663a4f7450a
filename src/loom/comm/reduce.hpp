#pragma once
// Element-wise kernels of the reductions. Written as plain loops that -O3 -march=x86-64-v3
// vectorises (AVX2): on two ranks per two cores the reduction runs at memory speed only if it is
// vectorised, so keep them branch-free.
#include <cstddef>
#include <cstdint>

#include "loom/comm/types.hpp"

namespace loom::comm {

// acc[i] += in[i] for `count` elements of `dtype` (bf16 is accumulated in float and rounded to
// nearest even once per call).
void sum_into(void* acc, const void* in, size_t count, DType dtype);

// data[i] *= factor (used for ReduceOp::Avg once the sum is complete).
void scale(void* data, size_t count, DType dtype, float factor);

float bf16_to_float(uint16_t v);
uint16_t float_to_bf16(float f);

}  // namespace loom::comm
