#include "loom/infer/int8_matrix.hpp"

#include <gtest/gtest.h>

#include <cmath>

#include "loom/core/rng.hpp"

namespace loom::infer {
namespace {

TEST(Int8Matrix, QuantisesEachOutputChannelWithItsOwnScale) {
  // Conv1D weight [in = 3, out = 2]: output channel 0 is column 0.
  const std::vector<float> w = {1.0f, -0.01f, -2.0f, 0.02f, 0.5f, 0.0f};
  const Int8Matrix m = quantize_conv1d(w.data(), 3, 2);
  ASSERT_EQ(m.rows, 2);
  ASSERT_EQ(m.cols, 3);
  EXPECT_FLOAT_EQ(m.scale[0], 2.0f / 127);
  EXPECT_FLOAT_EQ(m.scale[1], 0.02f / 127);
  EXPECT_EQ(m.q.data()[0], 64);    // 1.0 / (2/127) = 63.5 -> 64
  EXPECT_EQ(m.q.data()[1], -127);  // -2.0
  EXPECT_EQ(m.q.data()[3], -64);   // -0.01 / (0.02/127) = -63.5 -> -64
  EXPECT_EQ(m.q.data()[4], 127);
  std::vector<float> row(3);
  dequantize_row(row.data(), m, 1);
  EXPECT_NEAR(row[1], 0.02f, 1e-7);
}

// Every path of int8_linear_forward (2x4 tiles, single rows, leftover channels, dequantised
// tiles + sgemm above 16 rows) equals the product with the dequantised weight.
TEST(Int8Matrix, LinearForwardEqualsTheDequantisedProductOnEveryPath) {
  const int in = 13, out = 7;
  Rng rng(3);
  std::vector<float> w(in * out), bias(out);
  for (auto& v : w) v = rng.normal();
  for (auto& v : bias) v = rng.normal();
  const Int8Matrix m = quantize_conv1d(w.data(), in, out);
  for (int N : {1, 3, 4, 5, 8, 11, 16, 17, 40}) {
    std::vector<float> x(N * in), y(N * out);
    for (auto& v : x) v = rng.normal();
    int8_linear_forward(y.data(), x.data(), m, bias.data(), N);
    for (int n = 0; n < N; ++n)
      for (int o = 0; o < out; ++o) {
        double want = bias[o];
        for (int i = 0; i < in; ++i) want += x[n * in + i] * m.scale[o] * m.q.data()[o * in + i];
        ASSERT_NEAR(y[n * out + o], want, 1e-4) << "N " << N << " row " << n << " channel " << o;
      }
  }
}

}  // namespace
}  // namespace loom::infer
