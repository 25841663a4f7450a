// The planner and ZeRO-3: a rank's model state as `loom memory` predicts it (parameters sharded
// with two blocks' working buffers), gathers costing half an all-reduce more than ZeRO-2, and
// ZeRO-3 proposed exactly when memory requires it: whenever it is the best plan, ZeRO-2 of the
// same layout does not fit, and under a limit only ZeRO-3 meets, the best plan is ZeRO-3.
#include <gtest/gtest.h>

#include <algorithm>

#include "loom/core/check.hpp"
#include "loom/parallel/planner/memory_model.hpp"
#include "loom/parallel/planner/planner.hpp"
#include "planner_request.hpp"

namespace loom::planner {
namespace {

KernelCosts costs() {
  KernelCosts k;
  k.seq = 64;
  k.block = {1e-3, 1e-3, 1e-3};
  k.embedding = {1e-4, 0, 1e-4};
  k.head = {1e-3, 1e-3, 1e-3};
  k.block_attention_f = 4e-4;
  k.adamw_s_per_param = 1e-9;
  return k;
}

bool same_layout(const Prediction& a, const Prediction& b) {
  return a.layout.describe() == b.layout.describe() && a.recompute == b.recompute;
}

TEST(PlannerZero3, MemoryIsLoomMemorysModelState) {
  PlanRequest r = test::small_request(4);
  r.zero = 3;
  const Layout dp4{4, 1, 1, pipeline::ScheduleKind::OneFOneB, 1, 1};
  const Prediction p = predict(r, costs(), {}, dp4);
  const ModelStateBytes state = model_state_bytes(r.model, ModelShard{}, 4, 3, r.bucket_mb);
  EXPECT_NEAR(p.memory_gb - p.activation_gb, state.total() / 1e9, 1e-12);
  // Parameters: a quarter of every unit, plus the ends (wte, wpe, ln_f) and two blocks whole.
  const double C = 96, block = 12 * C * C + 13 * C, ends = (1000 + 64) * C + 2 * C;
  const double P = static_cast<double>(r.model.num_params());
  EXPECT_NEAR(state.parameters, 4 * (P / 4 + ends + 2 * block), 4 * 4);
  EXPECT_NEAR(state.moments, 8 * P / 4, 8 * 4);
  // The dp term: the gathers before forward and backward and the gradients' reduce-scatter.
  r.zero = 2;
  const Prediction zero2 = predict(r, costs(), {}, dp4);
  EXPECT_NEAR(p.dp_comm_s, 1.5 * zero2.dp_comm_s, 1e-15);
  EXPECT_LT(p.memory_gb, zero2.memory_gb);
}

// 13 ranks (a prime above n_layer 12 and n_head 12): no tp or pp, so the ZeRO stage is what
// decides memory. (A pipeline, where it can cut the blocks finer than ZeRO-3's two working
// blocks, holds less: ZeRO-3 earns its place where stages run out.)
TEST(PlannerZero3, ProposedExactlyWhenMemoryRequiresIt) {
  PlanRequest r = test::small_request(13);
  r.global_batch = 13;
  const std::vector<Recompute> none{Recompute::kNone};
  const auto all = plan_each(r, costs(), {}, {0, 1, 2, 3}, none);
  double least_without = 1e30, least_with = 1e30;
  for (const Prediction& p : all) {
    double& least = p.zero == 3 ? least_with : least_without;
    least = std::min(least, p.memory_gb);
  }
  ASSERT_LT(least_with, least_without);
  // Without a limit ZeRO-3 (more traffic, the same compute) is never the best.
  EXPECT_NE(all.front().zero, 3) << all.front().layout.describe();
  // Sweep the limit from what only ZeRO-3 meets to what everything meets.
  int zero3_chosen = 0;
  for (double limit = least_with; limit < 2 * least_without; limit *= 1.02) {
    r.mem_gb = limit;
    const auto preds = plan_each(r, costs(), {}, {0, 1, 2, 3}, none);
    const Prediction& best = preds.front();
    ASSERT_TRUE(best.fits) << limit;
    if (best.zero != 3) continue;
    ++zero3_chosen;
    for (const Prediction& p : preds) {
      if (p.zero < 3 && same_layout(p, best)) {
        EXPECT_FALSE(p.fits) << "ZeRO-" << p.zero << " of " << best.layout.describe()
                             << " fits under " << limit << " GB, yet ZeRO-3 was chosen";
      }
    }
  }
  EXPECT_GT(zero3_chosen, 0);
  r.mem_gb = (least_with + least_without) / 2;
  EXPECT_EQ(plan_each(r, costs(), {}, {0, 1, 2, 3}, none).front().zero, 3);
  EXPECT_THROW(best_trainable_layout(r, costs(), {}), Error);  // ZeRO-0 alone does not fit
}

}  // namespace
}  // namespace loom::planner
