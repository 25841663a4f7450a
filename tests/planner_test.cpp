// The planner over a synthetic cost model (no timing): it enumerates exactly the valid layouts,
// its one-rank prediction is the sum of the parts, the schedules rank as the simulator says, and
// --mem_gb drops what does not fit.
#include <gtest/gtest.h>

#include <set>

#include "bench/plan_validation.hpp"
#include "loom/core/check.hpp"
#include "loom/parallel/planner/planner.hpp"
#include "planner_request.hpp"

namespace loom::planner {
namespace {

KernelCosts synthetic_costs() {
  KernelCosts k;
  k.seq = 64;
  k.block = {1e-3, 1e-3, 1e-3};
  k.embedding = {1e-4, 0, 1e-4};
  k.head = {2e-3, 2e-3, 2e-3};
  k.block_attention_f = 4e-4;
  k.adamw_s_per_param = 1e-9;
  return k;
}

TEST(Planner, EnumeratesEveryValidLayout) {
  const auto preds = plan(test::small_request(8), synthetic_costs(), {});
  std::set<std::tuple<int, int, int>> layouts;
  for (const auto& p : preds) {
    const Layout& L = p.layout;
    EXPECT_EQ(L.dp * L.tp * L.pp, 8);
    EXPECT_EQ(12 % L.tp, 0) << "tp must divide n_head";
    EXPECT_EQ(16 % (L.dp * L.micro_batches), 0);
    layouts.insert({L.dp, L.tp, L.pp});
  }
  // tp in {1, 2, 4} (8 does not divide 12 heads), pp any divisor of what is left.
  const std::set<std::tuple<int, int, int>> want = {{8, 1, 1}, {4, 1, 2}, {2, 1, 4}, {1, 1, 8},
                                                    {4, 2, 1}, {2, 2, 2}, {1, 2, 4}, {2, 4, 1},
                                                    {1, 4, 2}};
  EXPECT_EQ(layouts, want);
  for (size_t i = 1; i < preds.size(); ++i) EXPECT_LE(preds[i - 1].step_s, preds[i].step_s);
}

TEST(Planner, OneRankPredictionIsTheSumOfTheParts) {
  const KernelCosts k = synthetic_costs();
  const PlanRequest r = test::small_request(1);
  const Prediction p = predict(r, k, {}, {1, 1, 1, pipeline::ScheduleKind::OneFOneB, 1, 1});
  const double compute = 16 * (12 * k.block.total() + k.embedding.total() + k.head.total());
  EXPECT_NEAR(p.pipeline_s, compute, 1e-12);
  EXPECT_EQ(p.dp_comm_s, 0);
  EXPECT_GT(p.optimizer_s, 0);
  EXPECT_NEAR(p.step_s, p.pipeline_s + p.optimizer_s, 1e-12);
}

TEST(Planner, SchedulesRankAsTheSimulatorSays) {
  const KernelCosts k = synthetic_costs();
  const PlanRequest r = test::small_request(4);
  using S = pipeline::ScheduleKind;
  const Prediction one = predict(r, k, {}, {1, 1, 4, S::OneFOneB, 1, 8});
  const Prediction zb = predict(r, k, {}, {1, 1, 4, S::ZeroBubbleH1, 1, 8});
  const Prediction gpipe = predict(r, k, {}, {1, 1, 4, S::GPipe, 1, 8});
  EXPECT_LT(zb.step_s, one.step_s);
  EXPECT_LT(zb.bubble, one.bubble);
  EXPECT_GT(gpipe.memory_gb, one.memory_gb);  // 8 micro-batches in flight instead of 4
  // More micro-batches: smaller bubble.
  EXPECT_LT(predict(r, k, {}, {1, 1, 4, S::OneFOneB, 1, 16}).bubble, one.bubble);
  // The LM head (2 blocks' worth here) gets a stage with fewer blocks.
  EXPECT_LT(one.stage_first_block[4] - one.stage_first_block[3],
            one.stage_first_block[1] - one.stage_first_block[0]);
}

TEST(Planner, MemoryLimitDropsLayoutsAndTheRestComeFirst) {
  PlanRequest r = test::small_request(4);
  const auto all = plan(r, synthetic_costs(), {});
  double lo = 1e30, hi = 0;
  for (const auto& p : all) {
    lo = std::min(lo, p.memory_gb);
    hi = std::max(hi, p.memory_gb);
  }
  r.mem_gb = (lo + hi) / 2;
  const auto limited = plan(r, synthetic_costs(), {});
  bool seen_over = false;
  int over = 0;
  for (const auto& p : limited) {
    EXPECT_EQ(p.fits, p.memory_gb <= r.mem_gb);
    if (!p.fits) ++over;
    if (seen_over) {
      EXPECT_FALSE(p.fits) << "a fitting layout after one that does not fit";
    }
    seen_over = seen_over || !p.fits;
  }
  EXPECT_GT(over, 0);
  EXPECT_LT(over, static_cast<int>(limited.size()));
}

// --recompute: backward pays for what it runs again (the attention kernel's forward under
// selective, the whole block forward under full), activation memory shrinks, and full is never
// combined with zb1p (which `loom train` refuses).
TEST(Planner, RecomputeCostsBackwardTimeAndSavesActivationMemory) {
  const KernelCosts k = synthetic_costs();
  PlanRequest r = test::small_request(1);
  const Layout one{1, 1, 1, pipeline::ScheduleKind::OneFOneB, 1, 1};
  const Prediction none = predict(r, k, {}, one);
  r.recompute = Recompute::kSelective;
  const Prediction selective = predict(r, k, {}, one);
  r.recompute = Recompute::kFull;
  const Prediction full = predict(r, k, {}, one);
  // 16 sequences x 12 blocks, each recomputing its attention (selective) or forward (full).
  EXPECT_NEAR(selective.pipeline_s - none.pipeline_s, 16 * 12 * k.block_attention_f, 1e-12);
  EXPECT_NEAR(full.pipeline_s - none.pipeline_s, 16 * 12 * k.block.f, 1e-12);
  EXPECT_GT(none.memory_gb, selective.memory_gb);
  EXPECT_GT(selective.memory_gb, full.memory_gb);
  // Per token: selective drops the H x T attention probabilities of each block but one (the
  // buffer the blocks share to recompute them).
  const double probs = 11.0 * 12 * 64 * 16 * 64 * 4 / 1e9;  // blocks x H x T x tokens x 4 B
  EXPECT_NEAR(none.memory_gb - selective.memory_gb, probs, 1e-9);
}

TEST(Planner, RecomputeFullNeverPlansZeroBubble) {
  // Blocks whose W is most of their cost, so zb1p (W moved into the bubble) wins at pp > 1.
  KernelCosts k = synthetic_costs();
  k.block = {1e-3, 1e-3, 4e-3};
  PlanRequest r = test::small_request(2);
  r.global_batch = 4;
  r.mem_gb = 1e-9;  // nothing fits: ranked by time alone
  auto schedules_of = [&] {
    std::set<pipeline::ScheduleKind> s;
    for (const auto& p : plan(r, k, {}))
      if (p.layout.pp > 1) s.insert(p.layout.schedule);
    return s;
  };
  EXPECT_TRUE(schedules_of().count(pipeline::ScheduleKind::ZeroBubbleH1));
  r.recompute = Recompute::kFull;
  EXPECT_FALSE(schedules_of().count(pipeline::ScheduleKind::ZeroBubbleH1));
  EXPECT_FALSE(schedules_of().empty());
  EXPECT_THROW(predict(r, k, {}, {1, 1, 2, pipeline::ScheduleKind::ZeroBubbleH1, 1, 4}), Error);
  // The best layout `loom train` can run, where pipelining is the only way to fit: not zb1p.
  r.mem_gb = 0;
  r.recompute = Recompute::kNone;
  const Prediction pp_best = predict(r, k, {}, {1, 1, 2, pipeline::ScheduleKind::ZeroBubbleH1, 1, 4});
  r.mem_gb = pp_best.memory_gb * 1.01;  // fits pp 2, not the whole model on each of 2 ranks
  EXPECT_EQ(best_trainable_layout(r, k, {}).layout.schedule, pipeline::ScheduleKind::ZeroBubbleH1);
  r.recompute = Recompute::kFull;
  r.mem_gb = predict(r, k, {}, {1, 1, 2, pipeline::ScheduleKind::OneFOneB, 1, 4}).memory_gb * 1.01;
  ASSERT_GT(predict(r, k, {}, {2, 1, 1, pipeline::ScheduleKind::OneFOneB, 1, 1}).memory_gb, r.mem_gb);
  const Prediction chosen = best_trainable_layout(r, k, {});
  EXPECT_EQ(chosen.layout.pp, 2);
  EXPECT_NE(chosen.layout.schedule, pipeline::ScheduleKind::ZeroBubbleH1);
}

// `loom plan --validate K` runs K layouts: the best of each mesh shape first.
TEST(Planner, PickedLayoutsCoverEveryMeshShapeFirst) {
  const auto ranked = plan(test::small_request(8), synthetic_costs(), {});
  std::set<std::tuple<int, int, int>> shapes;
  for (const auto& p : ranked) shapes.insert({p.layout.dp, p.layout.tp, p.layout.pp});
  const auto picked = pick_layouts(ranked, static_cast<int>(shapes.size()) + 3);
  ASSERT_EQ(picked.size(), shapes.size() + 3);
  std::set<std::tuple<int, int, int>> first;
  for (size_t i = 0; i < shapes.size(); ++i)
    first.insert({picked[i].layout.dp, picked[i].layout.tp, picked[i].layout.pp});
  EXPECT_EQ(first, shapes) << "the first picks are one per mesh shape";
  EXPECT_EQ(pick_layouts(ranked, 2).size(), 2u);
}

// 4 ranks of 1 thread on 2 cores: each gets half a core, so compute takes twice as long;
// communication does not change.
TEST(Planner, RanksOutnumberingTheCoresSlowCompute) {
  const KernelCosts k = synthetic_costs();
  PlanRequest r = test::small_request(4);
  const Layout L{4, 1, 1, pipeline::ScheduleKind::OneFOneB, 1, 1};
  const Prediction free = predict(r, k, {}, L);
  r.cores = 4;
  EXPECT_DOUBLE_EQ(predict(r, k, {}, L).step_s, free.step_s);
  r.cores = 2;
  const Prediction shared = predict(r, k, {}, L);
  EXPECT_NEAR(shared.pipeline_s, 2 * free.pipeline_s, 1e-12);
  EXPECT_NEAR(shared.optimizer_s, 2 * free.optimizer_s, 1e-15);
  EXPECT_DOUBLE_EQ(shared.dp_comm_s, free.dp_comm_s);
}

TEST(Planner, ImpossibleRequestsAreErrors) {
  PlanRequest r = test::small_request(4);
  r.model.n_layer = 1;
  r.model.n_head = 1;
  r.global_batch = 1;  // dp must divide it, tp must divide 1 head, pp <= 1 layer: none of 4 ranks
  EXPECT_THROW(plan(r, synthetic_costs(), {}), Error);
  EXPECT_THROW(predict(test::small_request(4), synthetic_costs(), {}, {3, 1, 1}), Error);  // 3 != 4 ranks
}

}  // namespace
}  // namespace loom::planner
