#include "loom/kernels/cpu/layernorm.hpp"

#include <gtest/gtest.h>

#include <cmath>

#include "gradcheck.hpp"

namespace loom::kernels {
namespace {

using test::dot;
using test::kGradTolerance;
using test::max_rel_error;
using test::random_vector;

TEST(LayerNorm, ForwardNormalisesEachRow) {
  const int N = 3, C = 8;
  const auto x = random_vector(N * C, 1, 3.0);
  std::vector<double> w(C, 1.0), b(C, 0.0), out(N * C), mean(N), rstd(N);
  layernorm_forward(out.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), N, C);
  for (int n = 0; n < N; ++n) {
    double s = 0, s2 = 0;
    for (int c = 0; c < C; ++c) {
      s += out[n * C + c];
      s2 += out[n * C + c] * out[n * C + c];
    }
    EXPECT_NEAR(s / C, 0.0, 1e-12);
    EXPECT_NEAR(s2 / C, 1.0, 1e-4);  // eps = 1e-5 keeps it just below 1
  }
}

TEST(LayerNorm, BackwardMatchesFiniteDifferences) {
  const int N = 5, C = 12;
  auto x = random_vector(N * C, 1, 2.0), w = random_vector(C, 2), b = random_vector(C, 3);
  const auto R = random_vector(N * C, 4);
  std::vector<double> out(N * C), mean(N), rstd(N);
  auto loss = [&] {
    layernorm_forward(out.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), N, C);
    return dot(out.data(), R.data(), out.size());
  };
  loss();
  // dx accumulates: start from a known value and subtract it afterwards.
  std::vector<double> dx(N * C, 0.5), dw(C, 0.0), db(C, 0.0);
  layernorm_backward(dx.data(), dw.data(), db.data(), R.data(), x.data(), w.data(), mean.data(),
                     rstd.data(), N, C);
  for (auto& v : dx) v -= 0.5;
  const double ex = max_rel_error(x.data(), x.size(), dx.data(), loss);
  const double ew = max_rel_error(w.data(), w.size(), dw.data(), loss);
  const double eb = max_rel_error(b.data(), b.size(), db.data(), loss);
  std::printf("layernorm max rel error: dx %.2e dw %.2e db %.2e\n", ex, ew, eb);
  EXPECT_LT(ex, kGradTolerance);
  EXPECT_LT(ew, kGradTolerance);
  EXPECT_LT(eb, kGradTolerance);
}

}  // namespace
}  // namespace loom::kernels
