// Expert parallelism (model/moe over parallel/CommExpertParallelGroup): the experts split over 2
// and 4 forked ranks give every rank the outputs, input gradients and router gradient that the
// whole layer (ep 1) gives for its tokens, and each expert the gradient of every rank's tokens
// routed to it, within 1e-6 (f32); the capacity drops are the same.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "forked_ranks.hpp"
#include "loom/model/moe/moe_layer.hpp"
#include "loom/parallel/expert_parallel_group.hpp"
#include "moe_test_util.hpp"

namespace loom::testing {
namespace {

using test::OwnedMoeWeights;

constexpr int kC = 8, kTokens = 12, kExperts = 4;

std::vector<float> floats(size_t n, uint64_t seed) {
  const auto d = test::random_vector(n, seed);
  return {d.begin(), d.end()};
}

// Largest |a - b| over the largest |b|: 0 when equal.
double rel_diff(const float* a, const float* b, size_t n) {
  double diff = 0, scale = 1e-30;
  for (size_t i = 0; i < n; ++i) {
    diff = std::max(diff, std::abs(static_cast<double>(a[i]) - b[i]));
    scale = std::max(scale, std::abs(static_cast<double>(b[i])));
  }
  return diff / scale;
}

// Rank r's tokens and output gradient; every rank can make every rank's.
std::vector<float> tokens_of(int rank) { return floats(static_cast<size_t>(kTokens) * kC, 100 + rank); }
std::vector<float> dy_of(int rank) { return floats(static_cast<size_t>(kTokens) * kC, 200 + rank); }

// Exit code 0 when this rank's ep results match ep 1 within 1e-6; the first mismatch otherwise.
int compare_with_ep1(comm::Communicator& comm, const moe::MoeConfig& cfg, bool dropless) {
  const int P = comm.size(), me = comm.rank();
  const OwnedMoeWeights<float> w(kC, kExperts, 31, 0.5);
  const size_t NC = static_cast<size_t>(kTokens) * kC;

  // ep 1, in this process: this rank's tokens alone (outputs, dx, router gradient), and every
  // rank's tokens one after the other (expert gradients summed over the ranks).
  moe::MoeLayer<float> whole(cfg, kC);
  OwnedMoeWeights<float> own(kC, kExperts, 0, 0), all(kC, kExperts, 0, 0);
  std::vector<float> y1(NC), dx1(NC), scratch(NC);
  moe::MoeBuffers<float> b1;
  moe::MoeStats s1;
  for (int r = 0; r < P; ++r) {
    const auto x = tokens_of(r), dy = dy_of(r);
    const moe::MoeStats s = whole.forward(r == me ? y1.data() : scratch.data(), x.data(), kTokens,
                                          w.view(), b1, dropless);
    whole.backward(r == me ? dx1.data() : scratch.data(), dy.data(), x.data(), w.view(), all.grads(),
                   b1, 1.0f);
    if (r != me) continue;
    s1 = s;
    whole.forward(y1.data(), x.data(), kTokens, w.view(), b1, dropless);
    whole.backward(dx1.data(), dy.data(), x.data(), w.view(), own.grads(), b1, 1.0f);
  }

  // ep P: this rank's tokens, its experts.
  parallel::CommExpertParallelGroup group(comm);
  moe::MoeLayer<float> split(cfg, kC, &group);
  const int first = split.first_expert(), El = split.local_experts();
  OwnedMoeWeights<float> g(kC, kExperts, 0, 0);
  std::vector<float> y(NC), dx(NC);
  moe::MoeBuffers<float> b;
  const auto x = tokens_of(me), dy = dy_of(me);
  for (int step = 0; step < 2; ++step) {  // twice: the buffers are reused as they are
    if (step == 1) g = OwnedMoeWeights<float>(kC, kExperts, 0, 0);
    const moe::MoeStats s = split.forward(y.data(), x.data(), kTokens, w.view(first, El), b, dropless);
    split.backward(dx.data(), dy.data(), x.data(), w.view(first, El), g.grads(first, El), b, 1.0f);
    if (s.dropped_share != s1.dropped_share) return 10;
    if (s.load_balance_loss != s1.load_balance_loss || s.z_loss != s1.z_loss) return 11;
  }
  if (!dropless && s1.dropped_share == 0) return 12;  // the capacity case must drop something
  const double tol = 1e-6;
  if (rel_diff(y.data(), y1.data(), NC) > tol) return 20;
  if (rel_diff(dx.data(), dx1.data(), NC) > tol) return 21;
  if (rel_diff(g.router.data(), own.router.data(), g.router.size()) > tol) return 22;
  for (int e = first; e < first + El; ++e) {
    const auto &a = g.experts[e], &ref = all.experts[e];
    if (rel_diff(a.fc_w.data(), ref.fc_w.data(), a.fc_w.size()) > tol) return 30;
    if (rel_diff(a.fc_b.data(), ref.fc_b.data(), a.fc_b.size()) > tol) return 31;
    if (rel_diff(a.proj_w.data(), ref.proj_w.data(), a.proj_w.size()) > tol) return 32;
    if (rel_diff(a.proj_b.data(), ref.proj_b.data(), a.proj_b.size()) > tol) return 33;
  }
  return 0;
}

struct Case {
  int ranks;
  bool dropless;
};

class MoeExpertParallel : public ::testing::TestWithParam<Case> {};

TEST_P(MoeExpertParallel, EqualsTheWholeLayerOnOneRank) {
  const Case c = GetParam();
  const moe::MoeConfig cfg{kExperts, 2, 1.0f, 0.05f, 0.01f};
  const auto out = run_forked_ranks(c.ranks, 120, [&](comm::Communicator& comm) {
    return compare_with_ep1(comm, cfg, c.dropless);
  });
  for (size_t r = 0; r < out.size(); ++r)
    EXPECT_EQ(out[r].exit_code, 0) << "rank " << r << ": " << out[r].error;
}

INSTANTIATE_TEST_SUITE_P(Ranks, MoeExpertParallel,
                         ::testing::Values(Case{2, false}, Case{2, true}, Case{4, false},
                                           Case{4, true}),
                         [](const auto& info) {
                           return "ep" + std::to_string(info.param.ranks) +
                                  (info.param.dropless ? "Dropless" : "WithCapacity");
                         });

}  // namespace
}  // namespace loom::testing
