// Gradient checks (double precision) for the GEMM-based kernels: linear (Conv1D) and the tied
// LM head; plus the matmul interface's double transposes against a naive product.
#include <gtest/gtest.h>

#include "gradcheck.hpp"
#include "loom/kernels/cpu/matmul.hpp"
#include "loom/kernels/cpu/linear.hpp"
#include "loom/kernels/cpu/lm_head.hpp"

namespace loom::kernels {
namespace {

using test::dot;
using test::kGradTolerance;
using test::max_rel_error;
using test::random_vector;

TEST(Matmul, DoubleTransposeCombinationsMatchNaiveProduct) {
  const int M = 5, N = 7, K = 3;
  const auto A = random_vector(M * K, 1), B = random_vector(K * N, 2);
  // Reference C = A[M,K] @ B[K,N]; transposed inputs are the same data stored transposed.
  std::vector<double> At(K * M), Bt(N * K), ref(M * N, 0.0);
  for (int m = 0; m < M; ++m)
    for (int k = 0; k < K; ++k) At[k * M + m] = A[m * K + k];
  for (int k = 0; k < K; ++k)
    for (int n = 0; n < N; ++n) Bt[n * K + k] = B[k * N + n];
  for (int m = 0; m < M; ++m)
    for (int n = 0; n < N; ++n)
      for (int k = 0; k < K; ++k) ref[m * N + n] += A[m * K + k] * B[k * N + n];
  for (int ta = 0; ta < 2; ++ta) {
    for (int tb = 0; tb < 2; ++tb) {
      std::vector<double> C(M * N, 1.0);
      matmul<double>(ta, tb, M, N, K, 2.0, ta ? At.data() : A.data(), ta ? M : K,
                     tb ? Bt.data() : B.data(), tb ? K : N, 0.5, C.data(), N);
      for (int i = 0; i < M * N; ++i) EXPECT_NEAR(C[i], 2.0 * ref[i] + 0.5, 1e-12) << ta << tb;
    }
  }
}

TEST(Linear, BackwardMatchesFiniteDifferences) {
  const int N = 6, IC = 5, OC = 7;
  auto x = random_vector(N * IC, 1), w = random_vector(IC * OC, 2), b = random_vector(OC, 3);
  const auto R = random_vector(N * OC, 4);
  std::vector<double> out(N * OC);
  auto loss = [&] {
    linear_forward(out.data(), x.data(), w.data(), b.data(), N, IC, OC);
    return dot(out.data(), R.data(), out.size());
  };
  std::vector<double> dx(N * IC, 7.0), dw(IC * OC, 0.0), db(OC, 0.0);  // dx is overwritten
  linear_backward(dx.data(), dw.data(), db.data(), R.data(), x.data(), w.data(), N, IC, OC);
  const double ex = max_rel_error(x.data(), x.size(), dx.data(), loss);
  const double ew = max_rel_error(w.data(), w.size(), dw.data(), loss);
  const double eb = max_rel_error(b.data(), b.size(), db.data(), loss);
  std::printf("linear max rel error: dx %.2e dw %.2e db %.2e\n", ex, ew, eb);
  EXPECT_LT(ex, kGradTolerance);
  EXPECT_LT(ew, kGradTolerance);
  EXPECT_LT(eb, kGradTolerance);
}

TEST(Linear, BackwardAccumulatesWeightGradients) {
  const int N = 3, IC = 2, OC = 4;
  const auto x = random_vector(N * IC, 1), w = random_vector(IC * OC, 2), R = random_vector(N * OC, 3);
  std::vector<double> dx(N * IC), dw1(IC * OC, 0.0), db1(OC, 0.0);
  linear_backward(dx.data(), dw1.data(), db1.data(), R.data(), x.data(), w.data(), N, IC, OC);
  std::vector<double> dw2 = dw1, db2 = db1;
  linear_backward(dx.data(), dw2.data(), db2.data(), R.data(), x.data(), w.data(), N, IC, OC);
  for (size_t i = 0; i < dw1.size(); ++i) EXPECT_NEAR(dw2[i], 2 * dw1[i], 1e-12);
  for (size_t i = 0; i < db1.size(); ++i) EXPECT_NEAR(db2[i], 2 * db1[i], 1e-12);
}

TEST(Linear, WithoutBiasIsAPlainProduct) {
  const int N = 2, IC = 3, OC = 2;
  const auto x = random_vector(N * IC, 1), w = random_vector(IC * OC, 2);
  std::vector<double> out(N * OC, 99.0);
  linear_forward<double>(out.data(), x.data(), w.data(), nullptr, N, IC, OC);
  for (int n = 0; n < N; ++n)
    for (int o = 0; o < OC; ++o) {
      double s = 0;
      for (int i = 0; i < IC; ++i) s += x[n * IC + i] * w[i * OC + o];
      EXPECT_NEAR(out[n * OC + o], s, 1e-12);
    }
}

TEST(LMHead, BackwardMatchesFiniteDifferences) {
  const int N = 4, C = 6, V = 11;
  auto x = random_vector(N * C, 1), wte = random_vector(V * C, 2);
  const auto R = random_vector(N * V, 3);
  std::vector<double> logits(N * V);
  auto loss = [&] {
    lm_head_forward(logits.data(), x.data(), wte.data(), N, C, V);
    return dot(logits.data(), R.data(), logits.size());
  };
  loss();
  double s = 0;  // logits[1, 2] = x[1,:] . wte[2,:]
  for (int c = 0; c < C; ++c) s += x[1 * C + c] * wte[2 * C + c];
  EXPECT_NEAR(logits[1 * V + 2], s, 1e-12);
  std::vector<double> dx(N * C), dwte(V * C, 0.0);
  lm_head_backward(dx.data(), dwte.data(), R.data(), x.data(), wte.data(), N, C, V);
  const double ex = max_rel_error(x.data(), x.size(), dx.data(), loss);
  const double ew = max_rel_error(wte.data(), wte.size(), dwte.data(), loss);
  std::printf("lm head max rel error: dx %.2e dwte %.2e\n", ex, ew);
  EXPECT_LT(ex, kGradTolerance);
  EXPECT_LT(ew, kGradTolerance);
}

}  // namespace
}  // namespace loom::kernels
