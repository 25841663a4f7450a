#pragma once
// bfloat16 copies of GEMM operands for the bf16 matmul path (internal to kernels/cpu).
#include "loom/kernels/cpu/bf16.hpp"
#include "loom/kernels/cpu/matmul.hpp"

namespace loom::kernels {

// A dense bf16 copy of src[rows, cols] (row stride ld) in this thread's scratch slot (0 or 1),
// valid until the thread's next call with the same slot. `weight` only says which conversion
// time (bf16_conversion_time) it counts towards.
const bf16* scratch_bf16(int slot, const float* src, int rows, int cols, int ld, bool weight);

// A bf16 copy of src[rows, cols] (row stride ld) with row stride *ld16 (cols rounded up to 64)
// in the next free one of this thread's RoundedOnce buffers, which stays reserved until the
// matching release_rounded_once() (last reserved, first released).
const bf16* rounded_once_bf16(const float* src, int rows, int cols, int ld, int* ld16);
void release_rounded_once();

// A dense bf16 copy of the constant matrix src[rows, cols] (row stride ld), converted on its
// first use in the current weight generation and returned unchanged afterwards. Thread-safe.
// Each (src, rows, cols, ld) has a buffer of its own, allocated on first use and never moved or
// resized: a copy stays valid while other shapes of src, or other matrices, are cached, and is
// refilled in place by a later generation (2 bytes per weight and shape, kept for the process).
const bf16* cached_bf16(const float* src, int rows, int cols, int ld);

// Invalidates every cached copy (the parameters may have changed).
void new_weight_generation();

}  // namespace loom::kernels
