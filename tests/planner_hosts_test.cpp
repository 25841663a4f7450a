// The planner with two bandwidths (Bandwidths: inside a host, between hosts) and hosts of
// PlanRequest::ranks_per_host: a group's communication costs what its placement costs, so with
// a slow link between hosts the planner keeps the heavy tp groups inside hosts.
#include <gtest/gtest.h>

#include "loom/parallel/planner/planner.hpp"
#include "planner_request.hpp"

namespace loom::planner {
namespace {

// Compute-bound kernels with a heavy optimizer: on one fast host tp (which also divides the
// optimizer's work) is the best use of the ranks.
KernelCosts costs() {
  KernelCosts k;
  k.seq = 64;
  k.block = {1e-3, 1e-3, 1e-3};
  k.embedding = {1e-4, 0, 1e-4};
  k.head = {2e-3, 2e-3, 2e-3};
  k.block_attention_f = 4e-4;
  k.adamw_s_per_param = 1e-7;
  return k;
}

Bandwidths fast_inside_slow_across() {
  Bandwidths bw;
  bw.p2p_gbps = 1000;
  bw.allreduce_gbps = 1000;
  bw.inter_host_gbps = 0.05;
  return bw;
}

TEST(PlannerHosts, OneHostTakesTheWidestTpTwoHostsKeepTpInside) {
  PlanRequest one = test::small_request(4);  // tp may be 1, 2 or 4 (12 heads)
  const Prediction best_one = plan(one, costs(), fast_inside_slow_across()).front();
  EXPECT_EQ(best_one.layout.tp, 4) << best_one.layout.describe();

  PlanRequest two = one;
  two.ranks_per_host = 2;  // 2 hosts x 2 ranks: tp 4 would span both
  const Prediction best_two = plan(two, costs(), fast_inside_slow_across()).front();
  EXPECT_EQ(best_two.layout.tp, 2) << best_two.layout.describe();
}

TEST(PlannerHosts, AGroupSpanningHostsCostsTheInterHostLink) {
  PlanRequest r = test::small_request(4);
  const Layout tp4{1, 4, 1, pipeline::ScheduleKind::OneFOneB, 1, 1};
  const Layout dp2_tp2{2, 2, 1, pipeline::ScheduleKind::OneFOneB, 1, 1};
  const Bandwidths bw = fast_inside_slow_across();
  const Prediction tp4_one = predict(r, costs(), bw, tp4);
  const Prediction dp_one = predict(r, costs(), bw, dp2_tp2);
  r.ranks_per_host = 2;
  // tp 4 over 2 hosts: its activation all-reduces cross; dp 2 x tp 2: only dp crosses.
  EXPECT_GT(predict(r, costs(), bw, tp4).pipeline_s, 2 * tp4_one.pipeline_s);
  const Prediction dp_two = predict(r, costs(), bw, dp2_tp2);
  EXPECT_NEAR(dp_two.pipeline_s, dp_one.pipeline_s, 1e-12);
  EXPECT_GT(dp_two.dp_comm_s, 10 * dp_one.dp_comm_s);
  // Hosts as large as the world: as one host.
  r.ranks_per_host = 4;
  EXPECT_EQ(predict(r, costs(), bw, tp4).step_s, tp4_one.step_s);
}

}  // namespace
}  // namespace loom::planner
