// The MoE layer (model/moe): finite-difference checks in double of every gradient (router, gates,
// experts, load-balancing and z losses, with capacity drops, k 1 and k 2), the routing rules
// (ties, capacity in token order, the auxiliary losses by hand) and the one-expert layer against
// the dense GPT-2 MLP.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "gradcheck.hpp"
#include "loom/core/check.hpp"
#include "loom/kernels/cpu/gelu.hpp"
#include "loom/kernels/cpu/linear.hpp"
#include "loom/model/moe/moe_layer.hpp"
#include "loom/model/moe/moe_routing.hpp"
#include "moe_test_util.hpp"

namespace loom::test {
namespace {

using moe::MoeBuffers;
using moe::MoeConfig;
using moe::MoeLayer;
using moe::MoeRouting;

constexpr int kC = 4;
constexpr int kTokens = 8;

// loss = sum(y .* R) + dloss (load balance + z), and its gradient by backward; then every
// parameter and input checked against finite differences.
void check_gradients(const MoeConfig& cfg, bool dropless, bool expect_drops) {
  const int E = cfg.experts, N = kTokens;
  const double dloss = 0.7;
  MoeLayer<double> layer(cfg, kC);
  OwnedMoeWeights<double> w(kC, E, 11, 0.5), g(kC, E, 0, 0);
  std::vector<double> x = random_vector(static_cast<size_t>(N) * kC, 5);
  const std::vector<double> R = random_vector(static_cast<size_t>(N) * kC, 6);
  std::vector<double> y(x.size()), dx(x.size());
  MoeBuffers<double> b;
  const moe::MoeStats stats = layer.forward(y.data(), x.data(), N, w.view(), b, dropless);
  EXPECT_EQ(stats.dropped_share > 0, expect_drops) << stats.dropped_share;
  layer.backward(dx.data(), R.data(), x.data(), w.view(), g.grads(), b, dloss);

  MoeBuffers<double> fb;
  std::vector<double> fy(x.size());
  auto loss = [&] {
    const moe::MoeStats s = layer.forward(fy.data(), x.data(), N, w.view(), fb, dropless);
    return dot(fy.data(), R.data(), fy.size()) + dloss * (s.load_balance_loss + s.z_loss);
  };
  auto check = [&](std::vector<double>& param, const std::vector<double>& grad, const std::string& what) {
    EXPECT_LT(max_rel_error(param.data(), param.size(), grad.data(), loss), kGradTolerance) << what;
  };
  check(x, dx, "x");
  check(w.router, g.router, "router");
  for (int e = 0; e < E; ++e) {
    const std::string name = "expert " + std::to_string(e) + " ";
    check(w.experts[e].fc_w, g.experts[e].fc_w, name + "c_fc.weight");
    check(w.experts[e].fc_b, g.experts[e].fc_b, name + "c_fc.bias");
    check(w.experts[e].proj_w, g.experts[e].proj_w, name + "c_proj.weight");
    check(w.experts[e].proj_b, g.experts[e].proj_b, name + "c_proj.bias");
  }
}

TEST(MoeLayerGradients, TopTwoWithCapacityDropsMatchFiniteDifferences) {
  // capacity ceil(0.75 * 8 * 2 / 4) = 3 of 16 assignments per expert: some are dropped.
  check_gradients({4, 2, 0.75f, 0.3f, 0.2f}, /*dropless=*/false, /*expect_drops=*/true);
}

TEST(MoeLayerGradients, TopOneDroplessMatchesFiniteDifferences) {
  check_gradients({4, 1, 0.75f, 0.3f, 0.2f}, /*dropless=*/true, /*expect_drops=*/false);
}

TEST(MoeLayerGradients, TopThreeOfFiveWithoutCapacityMatchesFiniteDifferences) {
  check_gradients({5, 3, 0.0f, 0.3f, 0.2f}, /*dropless=*/false, /*expect_drops=*/false);
}

TEST(MoeRouting, TiesGoToTheLowerExpertIndex) {
  const MoeConfig cfg{4, 2, 0.0f, 0.0f, 0.0f};
  const std::vector<double> logits = {0.5, 1.0, 1.0, 1.0};  // experts 1, 2, 3 tie
  std::vector<double> probs(4), lse(1), gates(2);
  MoeRouting r;
  moe::route(logits.data(), 1, cfg, false, probs.data(), lse.data(), gates.data(), r);
  EXPECT_EQ(r.expert, (std::vector<int32_t>{1, 2}));
  EXPECT_DOUBLE_EQ(gates[0], 0.5);  // renormalised over the two chosen
  EXPECT_DOUBLE_EQ(gates[1], 0.5);
}

TEST(MoeRouting, TopOneGateIsTheRawProbability) {
  const MoeConfig cfg{3, 1, 0.0f, 0.0f, 0.0f};
  const std::vector<double> logits = {0.0, 2.0, 1.0};
  std::vector<double> probs(3), lse(1), gates(1);
  MoeRouting r;
  moe::route(logits.data(), 1, cfg, false, probs.data(), lse.data(), gates.data(), r);
  EXPECT_EQ(r.expert[0], 1);
  EXPECT_DOUBLE_EQ(gates[0], std::exp(2.0) / (1 + std::exp(2.0) + std::exp(1.0)));
}

// Three tokens all choose expert 0 of capacity ceil(1 * 3 * 1 / 2) = 2: the third is dropped.
TEST(MoeRouting, CapacityDropsTheThirdOfThreeTokensInTokenOrder) {
  const MoeConfig cfg{2, 1, 1.0f, 0.01f, 0.001f};
  const std::vector<double> logits = {2, 0, 3, 0, 2.5, 0};
  std::vector<double> probs(6), lse(3), gates(3);
  MoeRouting r;
  moe::route(logits.data(), 3, cfg, false, probs.data(), lse.data(), gates.data(), r);
  EXPECT_EQ(r.capacity, 2);
  EXPECT_EQ(r.expert, (std::vector<int32_t>{0, 0, 0}));
  EXPECT_EQ(r.row, (std::vector<int32_t>{0, 1, -1}));  // token order, not probability order
  EXPECT_EQ(r.kept, (std::vector<int32_t>{2, 0}));
  EXPECT_EQ(r.chosen, (std::vector<int32_t>{3, 0}));
  // Dropless (evaluation): all three kept.
  moe::route(logits.data(), 3, cfg, true, probs.data(), lse.data(), gates.data(), r);
  EXPECT_EQ(r.row, (std::vector<int32_t>{0, 1, 2}));
}

TEST(MoeRouting, AuxiliaryLossesEqualTheirHandComputedValues) {
  const MoeConfig cfg{2, 1, 1.0f, 0.01f, 0.001f};
  const std::vector<double> logits = {2, 0, 3, 0, 2.5, 0};
  std::vector<double> probs(6), lse(3), gates(3);
  MoeRouting r;
  moe::route(logits.data(), 3, cfg, false, probs.data(), lse.data(), gates.data(), r);
  const moe::AuxLosses aux = moe::aux_losses(probs.data(), lse.data(), r, cfg);
  // f = (1, 0): every assignment chose expert 0; P_0 = mean of sigmoid(2), sigmoid(3), sigmoid(2.5).
  auto sigmoid = [](double v) { return 1 / (1 + std::exp(-v)); };
  const double P0 = (sigmoid(2) + sigmoid(3) + sigmoid(2.5)) / 3;
  EXPECT_NEAR(aux.load_balance, static_cast<double>(0.01f) * 2 * (1.0 * P0 + 0.0), 1e-15);
  auto lse_of = [](double v) { return std::log(std::exp(v) + 1); };
  const double z = (std::pow(lse_of(2), 2) + std::pow(lse_of(3), 2) + std::pow(lse_of(2.5), 2)) / 3;
  EXPECT_NEAR(aux.z, static_cast<double>(0.001f) * z, 1e-15);
}

TEST(MoeLayer, ADroppedTokenGetsNoExpertOutput) {
  const MoeConfig cfg{2, 1, 1.0f, 0.0f, 0.0f};
  MoeLayer<double> layer(cfg, kC);
  OwnedMoeWeights<double> w(kC, 2, 3, 0.5);
  std::fill(w.router.begin(), w.router.end(), 0.0);
  w.router[0] = 2.0;  // logits (2 x[n][0], 0): with x[n][0] = 1 every token chooses expert 0
  std::vector<double> x(3 * kC, 0.25), y(3 * kC);
  for (int n = 0; n < 3; ++n) x[n * kC] = 1.0;
  MoeBuffers<double> b;
  const moe::MoeStats s = layer.forward(y.data(), x.data(), 3, w.view(), b, false);
  EXPECT_NEAR(s.dropped_share, 1.0 / 3, 1e-15);
  for (int c = 0; c < kC; ++c) {
    EXPECT_NE(y[c], 0.0);
    EXPECT_EQ(y[c], y[kC + c]);  // same input, same expert, same gate
    EXPECT_EQ(y[2 * kC + c], 0.0);  // the third is dropped: only the residual is left
  }
  EXPECT_DOUBLE_EQ(s.max_over_mean_load, 2.0);  // expert 0 took both kept, the mean is 1
}

// One expert, k 1, no capacity: the gate is softmax of one logit = 1 exactly, so the layer is the
// dense GPT-2 MLP with that expert's weights, bit for bit, and so are the expert's gradients.
TEST(MoeLayer, OneExpertEqualsTheDenseMlp) {
  const MoeConfig cfg{1, 1, 0.0f, 0.0f, 0.0f};
  const int N = 5, C = kC;
  MoeLayer<float> layer(cfg, C);
  OwnedMoeWeights<float> w(C, 1, 7, 0.5), g(C, 1, 0, 0);
  const auto xd = random_vector(static_cast<size_t>(N) * C, 8), dyd = random_vector(N * C, 9);
  const std::vector<float> x(xd.begin(), xd.end()), dy(dyd.begin(), dyd.end());
  std::vector<float> y(N * C), dx(N * C);
  MoeBuffers<float> b;
  layer.forward(y.data(), x.data(), N, w.view(), b, false);
  layer.backward(dx.data(), dy.data(), x.data(), w.view(), g.grads(), b, 1.0f);

  const auto& e = w.experts[0];
  std::vector<float> pre(N * 4 * C), act(N * 4 * C), dense(N * C), dact(N * 4 * C), ddx(N * C);
  kernels::linear_forward(pre.data(), x.data(), e.fc_w.data(), e.fc_b.data(), N, C, 4 * C);
  kernels::gelu_forward(act.data(), pre.data(), pre.size());
  kernels::linear_forward(dense.data(), act.data(), e.proj_w.data(), e.proj_b.data(), N, 4 * C, C);
  EXPECT_EQ(y, dense);
  OwnedMoeWeights<float> dg(C, 1, 0, 0);
  auto& de = dg.experts[0];
  kernels::linear_backward(dact.data(), de.proj_w.data(), de.proj_b.data(), dy.data(), act.data(),
                           e.proj_w.data(), N, 4 * C, C);
  kernels::gelu_backward(dact.data(), pre.data(), dact.data(), dact.size());
  kernels::linear_backward(ddx.data(), de.fc_w.data(), de.fc_b.data(), dact.data(), x.data(),
                           e.fc_w.data(), N, C, 4 * C);
  EXPECT_EQ(g.experts[0].fc_w, de.fc_w);
  EXPECT_EQ(g.experts[0].fc_b, de.fc_b);
  EXPECT_EQ(g.experts[0].proj_w, de.proj_w);
  EXPECT_EQ(g.experts[0].proj_b, de.proj_b);
  EXPECT_EQ(dx, ddx);  // the router's share is p (1 - p) = 0
}

// The buffers are sized by the first call for the worst routing of its N: later calls with the
// same N (other tokens, other routing) do not reallocate them.
TEST(MoeLayer, LaterCallsReuseTheFirstCallsBuffers) {
  const MoeConfig cfg{4, 2, 1.0f, 0.1f, 0.1f};  // capacity 4: the routing decides how many rows
  MoeLayer<float> layer(cfg, kC);
  OwnedMoeWeights<float> w(kC, 4, 3, 0.5), g(kC, 4, 0, 0);
  std::vector<float> y(kTokens * kC), dx(kTokens * kC);
  MoeBuffers<float> b;
  std::vector<const void*> first;
  int64_t first_rows = 0, most_rows = 0;
  for (uint64_t seed = 1; seed <= 8; ++seed) {
    const auto xd = random_vector(static_cast<size_t>(kTokens) * kC, seed, 2.0);
    std::vector<float> x(xd.begin(), xd.end());
    // The first call's tokens are all alike: they choose the same two experts, so only 2 x 4
    // assignments fit; the later, varied ones keep more.
    if (seed == 1)
      for (int n = 1; n < kTokens; ++n) std::copy(x.begin(), x.begin() + kC, x.begin() + n * kC);
    layer.forward(y.data(), x.data(), kTokens, w.view(), b, false);
    layer.backward(dx.data(), y.data(), x.data(), w.view(), g.grads(), b, 1.0f);
    const std::vector<const void*> now = {
        b.logits.data(),     b.dispatched.data(), b.expert_pre.data(),   b.expert_act.data(),
        b.expert_out.data(), b.d_returned.data(), b.d_dispatched.data(), b.d_expert_act.data(),
        b.routing.row.data(), b.routing.first.data()};
    if (seed == 1) {
      first = now;
      first_rows = b.routing.rows();
    } else {
      EXPECT_EQ(now, first) << "call " << seed;
    }
    most_rows = std::max(most_rows, b.routing.rows());
  }
  EXPECT_GT(most_rows, first_rows);  // a later call needed more rows than the first
}

TEST(MoeLayer, ExpertsThatDoNotDivideOverTheRanksAreRefused) {
  struct FakeGroup : moe::ExpertParallelGroup {
    int rank() const override { return 0; }
    int size() const override { return 3; }
    void all_to_all(const int32_t*, int32_t*, size_t) override {}
    void all_to_all_v(const float*, std::span<const size_t>, float*, std::span<const size_t>) override {}
    void all_to_all_v(const double*, std::span<const size_t>, double*, std::span<const size_t>) override {}
  } group;
  try {
    MoeLayer<float>({4, 2, 1.0f, 0.0f, 0.0f}, kC, &group);
    FAIL() << "4 experts over 3 ranks accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("4 experts cannot be split over 3"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace loom::test
