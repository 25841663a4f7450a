#include "loom/infer/int8_matrix.hpp"

#include <algorithm>
#include <cmath>

#include "loom/kernels/cpu/matmul.hpp"
#include "loom/kernels/cpu/parallel.hpp"

namespace loom::infer {

namespace {

// Quantises row o given its elements through at(o, i).
template <typename At>
Int8Matrix quantize(int rows, int cols, At at) {
  Int8Matrix m;
  m.rows = rows;
  m.cols = cols;
  m.q.resize(static_cast<size_t>(rows) * cols);
  m.scale.assign(rows, 0.0f);
#pragma omp parallel for schedule(static)
  for (int o = 0; o < rows; ++o) {
    float amax = 0;
    for (int i = 0; i < cols; ++i) amax = std::max(amax, std::fabs(at(o, i)));
    const float s = amax / 127.0f, inv = s > 0 ? 1.0f / s : 0.0f;
    m.scale[o] = s;
    int8_t* row = m.q.data() + static_cast<size_t>(o) * cols;
    for (int i = 0; i < cols; ++i) row[i] = static_cast<int8_t>(std::lrint(at(o, i) * inv));
  }
  return m;
}

// Rows a GEMV-style kernel handles directly; above it, tiles are dequantised for sgemm.
constexpr int kDirectRows = 16;
constexpr int kTile = 128;  // output channels per dequantised tile

// out[n0..n0+4, o0..o0+2): two output channels against four input rows. Each weight is
// converted from int8 once and used for four products; the eight accumulators stay in registers.
void dot_2x4(float* out, int ldo, const float* inp, const int8_t* q, int cols, const float* scale,
             const float* bias, int o0, int n0) {
  const int8_t* q0 = q + static_cast<size_t>(o0) * cols;
  const int8_t* q1 = q0 + cols;
  const float* x0 = inp + static_cast<size_t>(n0) * cols;
  const float *x1 = x0 + cols, *x2 = x1 + cols, *x3 = x2 + cols;
  float a00 = 0, a01 = 0, a02 = 0, a03 = 0, a10 = 0, a11 = 0, a12 = 0, a13 = 0;
#pragma omp simd reduction(+ : a00, a01, a02, a03, a10, a11, a12, a13)
  for (int i = 0; i < cols; ++i) {
    const float w0 = static_cast<float>(q0[i]), w1 = static_cast<float>(q1[i]);
    a00 += x0[i] * w0;
    a01 += x1[i] * w0;
    a02 += x2[i] * w0;
    a03 += x3[i] * w0;
    a10 += x0[i] * w1;
    a11 += x1[i] * w1;
    a12 += x2[i] * w1;
    a13 += x3[i] * w1;
  }
  const float acc[2][4] = {{a00, a01, a02, a03}, {a10, a11, a12, a13}};
  for (int r = 0; r < 2; ++r)
    for (int n = 0; n < 4; ++n)
      out[static_cast<size_t>(n0 + n) * ldo + o0 + r] = scale[o0 + r] * acc[r][n] + (bias ? bias[o0 + r] : 0.0f);
}

// out[n, o0..o0+n_out) (n_out <= 4) for one input row: four independent accumulators keep the
// FMA units busy where one dot product would wait on its own additions.
void dot_4x1(float* out, int ldo, const float* inp, const int8_t* q, int cols, const float* scale,
             const float* bias, int o0, int n_out, int n) {
  const int8_t* q0 = q + static_cast<size_t>(o0) * cols;
  const int8_t* q1 = q0 + (n_out > 1 ? cols : 0);
  const int8_t* q2 = q0 + (n_out > 2 ? 2 * cols : 0);
  const int8_t* q3 = q0 + (n_out > 3 ? 3 * cols : 0);
  const float* x = inp + static_cast<size_t>(n) * cols;
  float a0 = 0, a1 = 0, a2 = 0, a3 = 0;
#pragma omp simd reduction(+ : a0, a1, a2, a3)
  for (int i = 0; i < cols; ++i) {
    a0 += x[i] * static_cast<float>(q0[i]);
    a1 += x[i] * static_cast<float>(q1[i]);
    a2 += x[i] * static_cast<float>(q2[i]);
    a3 += x[i] * static_cast<float>(q3[i]);
  }
  const float acc[4] = {a0, a1, a2, a3};
  for (int j = 0; j < n_out; ++j) {
    const int o = o0 + j;
    out[static_cast<size_t>(n) * ldo + o] = scale[o] * acc[j] + (bias ? bias[o] : 0.0f);
  }
}

// Output channels [o0, o0 + 4) for all N rows: 2x4 tiles, then the leftover rows and channels.
void dot_block(float* out, const float* inp, int N, const Int8Matrix& w, const float* bias, int o0) {
  const int R = w.rows, K = w.cols, n_out = std::min(4, R - o0);
  const int n4 = n_out == 4 ? N / 4 * 4 : 0;
  for (int n0 = 0; n0 < n4; n0 += 4)
    for (int r = 0; r < 4; r += 2) dot_2x4(out, R, inp, w.q.data(), K, w.scale.data(), bias, o0 + r, n0);
  for (int n = n4; n < N; ++n) dot_4x1(out, R, inp, w.q.data(), K, w.scale.data(), bias, o0, n_out, n);
}

}  // namespace

Int8Matrix quantize_conv1d(const float* w, int in, int out) {
  return quantize(out, in, [&](int o, int i) { return w[static_cast<size_t>(i) * out + o]; });
}

Int8Matrix quantize_rows(const float* w, int rows, int cols) {
  return quantize(rows, cols, [&](int o, int i) { return w[static_cast<size_t>(o) * cols + i]; });
}

void dequantize_row(float* dst, const Int8Matrix& w, int r) {
  const int8_t* q = w.q.data() + static_cast<size_t>(r) * w.cols;
  const float s = w.scale[r];
#pragma omp simd
  for (int i = 0; i < w.cols; ++i) dst[i] = s * static_cast<float>(q[i]);
}

void int8_linear_forward(float* out, const float* inp, const Int8Matrix& w, const float* bias,
                         int N) {
  const int R = w.rows, K = w.cols;
  const bool threads = kernels::worth_threads(static_cast<size_t>(R) * K);
  if (N <= kDirectRows) {
#pragma omp parallel for schedule(static) if (threads)
    for (int o0 = 0; o0 < R; o0 += 4) dot_block(out, inp, N, w, bias, o0);
    return;
  }
  // Many rows (prefill, evaluation): dequantise kTile output channels at a time and multiply
  // with sgemm; each thread owns its tiles, so BLAS runs single-threaded inside.
  kernels::BlasSingleThreaded one_blas_thread;
#pragma omp parallel if (threads)
  {
    AlignedBuffer<float> tile(static_cast<size_t>(kTile) * K);
#pragma omp for schedule(static)
    for (int o0 = 0; o0 < R; o0 += kTile) {
      const int n_out = std::min(kTile, R - o0);
      for (int j = 0; j < n_out; ++j) dequantize_row(tile.data() + static_cast<size_t>(j) * K, w, o0 + j);
      // out[:, o0:o0+n_out] = inp[N, K] @ tile[n_out, K]^T (+ bias)
      float* o = out + o0;
      if (bias != nullptr)
        for (int n = 0; n < N; ++n) std::copy(bias + o0, bias + o0 + n_out, o + static_cast<size_t>(n) * R);
      kernels::matmul<float>(false, true, N, n_out, K, 1.0f, inp, K, tile.data(), K,
                             bias ? 1.0f : 0.0f, o, R);
    }
  }
}

}  // namespace loom::infer
