// GELU, dropout and the float exp they rely on.
#include <gtest/gtest.h>

#include <cmath>

#include "gradcheck.hpp"
#include "loom/kernels/cpu/dropout.hpp"
#include "loom/kernels/cpu/gelu.hpp"
#include "loom/kernels/cpu/vec_math.hpp"

namespace loom::kernels {
namespace {

using test::dot;
using test::kGradTolerance;
using test::max_rel_error;
using test::random_vector;

TEST(VecMath, FloatExpIsAccurateAndUnderflowsToZero) {
  double worst = 0;
  for (float x = -87.0f; x <= 0.0f; x += 0.00371f) {
    const double ref = std::exp(static_cast<double>(x));
    worst = std::max(worst, std::abs(exp_nonpositive(x) - ref) / ref);
  }
  std::printf("exp_nonpositive max rel error: %.2e\n", worst);
  EXPECT_LT(worst, 5e-7);
  EXPECT_EQ(exp_nonpositive(0.0f), 1.0f);
  EXPECT_EQ(exp_nonpositive(-100.0f), 0.0f);
  EXPECT_EQ(exp_nonpositive(-4e6f), 0.0f);
}

TEST(VecMath, FloatTanhIsAccurateAndSaturates) {
  double worst = 0;
  for (float u = -12.0f; u <= 12.0f; u += 0.00117f) {
    worst = std::max(worst, std::abs(vtanh(u) - std::tanh(static_cast<double>(u))));
  }
  std::printf("float tanh max abs error: %.2e\n", worst);
  EXPECT_LT(worst, 3e-7);
  EXPECT_EQ(vtanh(1e6f), 1.0f);
  EXPECT_EQ(vtanh(-1e6f), -1.0f);
}

TEST(Gelu, FloatMatchesDouble) {
  const auto xd = random_vector(1000, 1, 4.0);
  std::vector<float> xf(xd.begin(), xd.end()), of(xf.size());
  std::vector<double> od(xd.size());
  gelu_forward(of.data(), xf.data(), xf.size());
  gelu_forward(od.data(), xd.data(), xd.size());
  for (size_t i = 0; i < xd.size(); ++i) EXPECT_NEAR(of[i], od[i], 2e-6 * (1 + std::abs(od[i])));
  EXPECT_NEAR(od[0], 0.5 * xd[0] * (1 + std::tanh(0.7978845608028654 *
                                                    (xd[0] + 0.044715 * std::pow(xd[0], 3)))),
              1e-15);
}

TEST(Gelu, BackwardMatchesFiniteDifferences) {
  const size_t n = 200;
  auto x = random_vector(n, 1, 3.0);
  const auto R = random_vector(n, 2);
  std::vector<double> out(n), dx(n);
  auto loss = [&] {
    gelu_forward(out.data(), x.data(), n);
    return dot(out.data(), R.data(), n);
  };
  gelu_backward(dx.data(), x.data(), R.data(), n);
  const double e = max_rel_error(x.data(), n, dx.data(), loss);
  std::printf("gelu max rel error: %.2e\n", e);
  EXPECT_LT(e, kGradTolerance);
}

TEST(Dropout, MaskIsDeterministicAndHasTheRightRate) {
  const size_t n = 100000;
  std::vector<uint8_t> m1(n), m2(n), m3(n);
  dropout_mask(m1.data(), n, 0.25f, 5);
  dropout_mask(m2.data(), n, 0.25f, 5);
  dropout_mask(m3.data(), n, 0.25f, 6);
  EXPECT_EQ(m1, m2);
  EXPECT_NE(m1, m3);
  size_t kept = 0;
  for (auto v : m1) kept += v;
  EXPECT_NEAR(static_cast<double>(kept) / n, 0.75, 0.01);
}

TEST(Dropout, BackwardWithFixedMaskMatchesFiniteDifferences) {
  const size_t n = 100;
  const float p = 0.4f;
  std::vector<uint8_t> mask(n);
  dropout_mask(mask.data(), n, p, 9);
  auto x = random_vector(n, 1);
  const auto R = random_vector(n, 2);
  std::vector<double> out(n), dx(n);
  auto loss = [&] {
    dropout_forward(out.data(), x.data(), mask.data(), p, n);
    return dot(out.data(), R.data(), n);
  };
  loss();
  for (size_t i = 0; i < n; ++i) EXPECT_EQ(out[i], mask[i] ? x[i] * (1.0 / (1.0 - static_cast<double>(p))) : 0.0);
  dropout_backward(dx.data(), R.data(), mask.data(), p, n);
  const double e = max_rel_error(x.data(), n, dx.data(), loss);
  std::printf("dropout max rel error: %.2e\n", e);
  EXPECT_LT(e, kGradTolerance);
}

}  // namespace
}  // namespace loom::kernels
