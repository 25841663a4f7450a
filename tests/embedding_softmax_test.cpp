// Token/position embedding and the fused softmax + cross-entropy.
#include <gtest/gtest.h>

#include <cmath>

#include "gradcheck.hpp"
#include "loom/core/check.hpp"
#include "loom/kernels/cpu/embedding.hpp"
#include "loom/kernels/cpu/softmax_ce.hpp"

namespace loom::kernels {
namespace {

using test::dot;
using test::kGradTolerance;
using test::max_rel_error;
using test::random_vector;

TEST(Embedding, BackwardMatchesFiniteDifferencesWithRepeatedTokens) {
  const int B = 2, T = 4, C = 5, V = 6;
  const std::vector<int32_t> tokens = {1, 3, 1, 5, 0, 1, 3, 3};
  auto wte = random_vector(V * C, 1), wpe = random_vector(T * C, 2);
  const auto R = random_vector(B * T * C, 3);
  std::vector<double> out(B * T * C);
  auto loss = [&] {
    embedding_forward(out.data(), tokens.data(), wte.data(), wpe.data(), B, T, C);
    return dot(out.data(), R.data(), out.size());
  };
  loss();
  EXPECT_EQ(out[(1 * T + 2) * C + 4], wte[3 * C + 4] + wpe[2 * C + 4]);
  std::vector<double> dwte(V * C, 0.0), dwpe(T * C, 0.0);
  embedding_backward(dwte.data(), dwpe.data(), R.data(), tokens.data(), B, T, C);
  const double et = max_rel_error(wte.data(), wte.size(), dwte.data(), loss);
  const double ep = max_rel_error(wpe.data(), wpe.size(), dwpe.data(), loss);
  std::printf("embedding max rel error: dwte %.2e dwpe %.2e\n", et, ep);
  EXPECT_LT(et, kGradTolerance);
  EXPECT_LT(ep, kGradTolerance);
}

TEST(Embedding, OutOfRangeTokenIsAnErrorNamingIt) {
  const std::vector<int32_t> ids = {0, 7, 2};
  try {
    check_tokens(ids.data(), 3, 5, "targets");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("targets[1] = 7"), std::string::npos) << e.what();
  }
}

TEST(SoftmaxCE, LossIsStableForHugeLogits) {
  const int V = 4;
  const std::vector<float> logits = {1000.0f, 0.0f, -1000.0f, 999.0f};
  const std::vector<int32_t> target = {3};
  float loss = 0, lse = 0;
  softmax_ce_forward(&loss, &lse, logits.data(), target.data(), 1, V);
  // -log(e^999 / (e^1000 + e^999)) = log(1 + e)
  EXPECT_NEAR(loss, std::log1p(std::exp(1.0)), 1e-5);
}

TEST(SoftmaxCE, BackwardInPlaceMatchesFiniteDifferences) {
  const int N = 4, V = 9;
  auto logits = random_vector(N * V, 1, 3.0);
  const std::vector<int32_t> targets = {0, 8, 3, 3};
  const double scale = 1.7;  // loss = scale * mean(losses)
  std::vector<double> losses(N), lse(N);
  auto loss = [&] {
    softmax_ce_forward(losses.data(), lse.data(), logits.data(), targets.data(), N, V);
    double s = 0;
    for (double l : losses) s += l;
    return scale * s / N;
  };
  loss();
  double ref = 0;  // row 1 by hand
  for (int v = 0; v < V; ++v) ref += std::exp(logits[V + v]);
  EXPECT_NEAR(losses[1], std::log(ref) - logits[V + 8], 1e-12);
  std::vector<double> dlogits = logits;  // in place, as the model does
  softmax_ce_backward(dlogits.data(), dlogits.data(), lse.data(), targets.data(), scale / N, N, V);
  const double e = max_rel_error(logits.data(), logits.size(), dlogits.data(), loss);
  std::printf("softmax+ce max rel error: %.2e\n", e);
  EXPECT_LT(e, kGradTolerance);
}

TEST(SoftmaxCE, FloatMatchesDouble) {
  const int N = 3, V = 50257;
  const auto ld = random_vector(static_cast<size_t>(N) * V, 4, 5.0);
  const std::vector<float> lf(ld.begin(), ld.end());
  const std::vector<int32_t> targets = {0, 50256, 12345};
  std::vector<double> lossd(N), lsed(N);
  std::vector<float> lossf(N), lsef(N);
  softmax_ce_forward(lossd.data(), lsed.data(), ld.data(), targets.data(), N, V);
  softmax_ce_forward(lossf.data(), lsef.data(), lf.data(), targets.data(), N, V);
  for (int n = 0; n < N; ++n) EXPECT_NEAR(lossf[n], lossd[n], 1e-4 * std::abs(lossd[n]));
}

}  // namespace
}  // namespace loom::kernels
