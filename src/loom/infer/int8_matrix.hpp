#pragma once
// Weight-only int8 quantisation with one scale per output channel (symmetric, round to nearest):
// row o of a weight holds output channel o, q[o, i] = round(w[o, i] / s[o]) with
// s[o] = max_i |w[o, i]| / 127, so w ~ s[o] * q[o, i]. Activations stay f32; products are
// accumulated in f32.
#include <cstdint>
#include <vector>

#include "loom/core/aligned_buffer.hpp"

namespace loom::infer {

struct Int8Matrix {
  int rows = 0, cols = 0;   // rows = output channels, cols = input channels
  AlignedBuffer<int8_t> q;  // (rows, cols)
  std::vector<float> scale; // (rows)
};

// From a Hugging Face Conv1D weight w[in, out] (row-major): output channel o is column o.
Int8Matrix quantize_conv1d(const float* w, int in, int out);
// From a weight stored one output channel per row, w[rows, cols] (the tied LM head: wte [V, C]).
Int8Matrix quantize_rows(const float* w, int rows, int cols);

// out[N, rows] = inp[N, cols] @ (s * q)^T + bias[rows]   (bias may be nullptr)
void int8_linear_forward(float* out, const float* inp, const Int8Matrix& w, const float* bias,
                         int N);

// dst[cols] = s[r] * q[r, :]: one dequantised row (an embedding lookup).
void dequantize_row(float* dst, const Int8Matrix& w, int r);

}  // namespace loom::infer
