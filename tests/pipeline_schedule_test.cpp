// Pipeline schedules as data: every schedule is valid and terminates over a grid of (pp, m, v);
// the simulator shows the memory and bubble each one promises; broken lists are rejected at
// construction naming the stage and the micro-batch.
#include <gtest/gtest.h>

#include "error_of.hpp"
#include "loom/core/check.hpp"
#include "loom/parallel/pipeline/schedule.hpp"
#include "loom/parallel/pipeline/simulator.hpp"

namespace loom::pipeline {
namespace {

using K = ScheduleKind;

TEST(PipelineSchedule, EveryScheduleTerminatesOverAGrid) {
  for (int P : {1, 2, 3, 4, 8})
    for (int m : {1, 2, 3, 4, 8, 16}) {
      for (K k : {K::GPipe, K::OneFOneB, K::ZeroBubbleH1}) {
        const Schedule s = make_schedule(k, P, m);  // validates and simulates
        const SimResult r = simulate(s);
        // Unit costs: every stage computes 3 units per micro-batch.
        for (int p = 0; p < P; ++p) EXPECT_DOUBLE_EQ(r.busy_s[p], 3.0 * m);
        EXPECT_GE(r.step_s, 3.0 * m) << name(k) << " P=" << P << " m=" << m;
      }
      if (P >= 2 && m % P == 0)
        for (int v : {1, 2, 3}) {
          const SimResult r = simulate(make_schedule(K::Interleaved, P, m, v));
          for (int p = 0; p < P; ++p) EXPECT_DOUBLE_EQ(r.busy_s[p], 3.0 * m * v);
        }
    }
}

TEST(PipelineSchedule, PeakInFlightIsWhatEachSchedulePromises) {
  for (int P : {2, 4, 8})
    for (int m : {P, 2 * P, 4 * P}) {
      const SimResult gpipe = simulate(make_schedule(K::GPipe, P, m));
      const SimResult one = simulate(make_schedule(K::OneFOneB, P, m));
      const SimResult zb = simulate(make_schedule(K::ZeroBubbleH1, P, m));
      for (int p = 0; p < P; ++p) {
        EXPECT_EQ(gpipe.peak_in_flight[p], m);
        EXPECT_EQ(one.peak_in_flight[p], std::min(m, P - p)) << "stage " << p;
        EXPECT_LE(zb.peak_in_flight[p], P) << "stage " << p;
      }
      EXPECT_EQ(one.peak_in_flight[0], P);
      EXPECT_EQ(*std::max_element(zb.peak_in_flight.begin(), zb.peak_in_flight.end()), P);
    }
}

TEST(PipelineSchedule, BubblesMatchTheory) {
  for (int P : {2, 4, 8})
    for (int m : {P, 2 * P, 4 * P}) {
      const double theory = (P - 1.0) / (m + P - 1.0);
      EXPECT_NEAR(simulate(make_schedule(K::GPipe, P, m)).bubble_fraction, theory, 1e-12);
      EXPECT_NEAR(simulate(make_schedule(K::OneFOneB, P, m)).bubble_fraction, theory, 1e-12);
      // ZB-H1 at the same peak memory: the bubble shrinks to about a third ((P-1) of 3m + P - 1
      // units with F = B = W, the paper's (P-1)(F+B-W) idle per stage).
      const SimResult zb = simulate(make_schedule(K::ZeroBubbleH1, P, m));
      EXPECT_LT(zb.bubble_fraction, theory) << "P=" << P << " m=" << m;
      EXPECT_NEAR(zb.bubble_fraction, (P - 1.0) / (3.0 * m + P - 1.0), 1e-12)
          << "P=" << P << " m=" << m;
    }
}

TEST(PipelineSchedule, InterleavingShrinksTheBubble) {
  // Megatron: v chunks per stage divide the bubble by about v (at more in-flight activations).
  const double one = simulate(make_schedule(K::OneFOneB, 4, 8)).bubble_fraction;
  const double two = simulate(make_schedule(K::Interleaved, 4, 8, 2)).bubble_fraction;
  EXPECT_LT(two, 0.6 * one);
  // Costs scale with the chunk: a chunk is half a stage.
  SimCosts half;
  half.chunk.assign(4, std::vector<ChunkCost>(2, ChunkCost{0.5, 0.5, 0.5, 0}));
  const double two_scaled = simulate(make_schedule(K::Interleaved, 4, 8, 2), half).bubble_fraction;
  EXPECT_NEAR(two_scaled, two, 1e-12);  // fractions are scale-free
}

TEST(PipelineSchedule, CommunicationLatencyLengthensTheStep) {
  SimCosts c;
  c.p2p_s = 0.5;
  // GPipe: the first micro-batch's forward crosses 3 links and its gradient 3 back, and
  // nothing else waits on a message: exactly 6 latencies more.
  const Schedule gpipe = make_schedule(K::GPipe, 4, 8);
  EXPECT_NEAR(simulate(gpipe, c).step_s, simulate(gpipe).step_s + 6 * 0.5, 1e-12);
  // 1F1B's steady state waits on every round trip: at least as much, here more.
  const Schedule one = make_schedule(K::OneFOneB, 4, 8);
  EXPECT_GT(simulate(one, c).step_s, simulate(one).step_s + 6 * 0.5);
}

TEST(PipelineSchedule, ABackwardBeforeItsForwardIsRejectedNamingStageAndMicroBatch) {
  auto lists = add_communication(compute_order(K::OneFOneB, 2, 4, 1), 2, 1);
  // Stage 1 runs F(0) B(0) F(1) B(1) ...: move B(1) (and its W) in front of F(1).
  auto& s1 = lists[1];
  const auto f1 = std::find(s1.begin(), s1.end(), Action{Op::F, 1, 0});
  const auto b1 = std::find(s1.begin(), s1.end(), Action{Op::B, 1, 0});
  ASSERT_TRUE(f1 < b1);
  std::iter_swap(f1, b1);
  const std::string e = test::error_of([&] { Schedule("broken", 2, 4, 1, lists); });
  EXPECT_NE(e.find("stage 1: micro-batch 1, chunk 0: B comes before its F"), std::string::npos) << e;
}

TEST(PipelineSchedule, OtherBrokenListsAreRejected) {
  auto expect_error = [](const std::vector<std::vector<Action>>& lists, const std::string& part) {
    const std::string e = test::error_of([&] { Schedule("broken", 2, 2, 1, lists); });
    EXPECT_NE(e.find(part), std::string::npos) << "expected '" << part << "', got '" << e << "'";
  };
  const auto good = add_communication(compute_order(K::GPipe, 2, 2, 1), 2, 1);
  {  // a missing W
    auto l = good;
    l[0].erase(std::find(l[0].begin(), l[0].end(), Action{Op::W, 1, 0}));
    expect_error(l, "stage 0: micro-batch 1, chunk 0: needs one F, one B and one W");
  }
  {  // receives in another order than the neighbour sends: activations would be swapped
    auto l = good;
    std::iter_swap(std::find(l[1].begin(), l[1].end(), Action{Op::RecvAct, 0, 0}),
                   std::find(l[1].begin(), l[1].end(), Action{Op::RecvAct, 1, 0}));
    std::iter_swap(std::find(l[1].begin(), l[1].end(), Action{Op::F, 0, 0}),
                   std::find(l[1].begin(), l[1].end(), Action{Op::F, 1, 0}));
    expect_error(l, "stage 0 sends activations to stage 1 in another order");
  }
  {  // locally fine, but both stages wait for each other: stage 0 runs B(0) before F(1), whose
     // output stage 1 needs before it sends B(0)'s gradient (stage 1 forwards both first)
    auto l = add_communication(
        {{{Op::F, 0}, {Op::B, 0}, {Op::W, 0}, {Op::F, 1}, {Op::B, 1}, {Op::W, 1}},
         {{Op::F, 0}, {Op::F, 1}, {Op::B, 0}, {Op::W, 0}, {Op::B, 1}, {Op::W, 1}}},
        2, 1);
    expect_error(l, "deadlocks: stage 0 waits at B(mb 0, chunk 0) for the gradient of micro-batch 0 "
                    "from stage 1; stage 1 waits at F(mb 1, chunk 0)");
  }
}

TEST(PipelineSchedule, BadArgumentsAreRejected) {
  EXPECT_THROW(make_schedule(K::Interleaved, 4, 6, 2), Error);  // m not a multiple of P
  EXPECT_THROW(make_schedule(K::OneFOneB, 4, 8, 2), Error);     // v > 1 without interleaving
  EXPECT_THROW(make_schedule(K::OneFOneB, 0, 8), Error);
  EXPECT_THROW(parse_schedule_kind("2f2b"), Error);
  EXPECT_EQ(parse_schedule_kind("zb1p"), K::ZeroBubbleH1);
}

}  // namespace
}  // namespace loom::pipeline
