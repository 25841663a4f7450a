// The planner's interleaved layouts and ZeRO stages, over a synthetic cost model (no timing):
// interleaving lists every v with pp x v <= n_layer and m a multiple of pp, cuts the bubble of
// 1F1B at the same (pp, m) when every block costs the same, holds each chunk's activation sets,
// and `--parallel auto` turns a chosen interleaved layout into a config `loom train` accepts.
// ZeRO-2 plans no pp > 1 layout and counts ShardedGradients' gradient bytes.
#include <gtest/gtest.h>

#include <iterator>
#include <map>
#include <set>

#include "loom/core/check.hpp"
#include "loom/model/activation_plan.hpp"
#include "loom/model/param_layout.hpp"
#include "loom/parallel/planner/auto_layout.hpp"
#include "loom/parallel/planner/memory_model.hpp"
#include "loom/parallel/planner/planner.hpp"
#include "planner_request.hpp"
#include "loom/parallel/sharded_gradients.hpp"

namespace loom::planner {
namespace {

using S = pipeline::ScheduleKind;

// Every block alike and nothing else costing time, so a balanced partition into pp x v parts
// is exact and only the schedule decides the bubble. W is free: zb1p is no better than 1F1B.
KernelCosts equal_costs() {
  KernelCosts k;
  k.seq = 64;
  k.block = {1e-3, 2e-3, 0};
  k.adamw_s_per_param = 1e-12;
  return k;
}

TEST(PlannerInterleaved, ListsEveryVirtualStageCountWithASmallerBubbleThan1F1B) {
  const auto preds = plan(test::small_request(4), equal_costs(), {});
  std::map<std::tuple<int, int, int, int>, double> one_f_one_b;  // (dp, tp, pp, m) -> bubble
  for (const auto& p : preds)
    if (p.layout.pp > 1 && p.layout.schedule == S::OneFOneB)
      one_f_one_b[{p.layout.dp, p.layout.tp, p.layout.pp, p.layout.micro_batches}] = p.bubble;
  std::set<std::tuple<int, int, int>> seen;  // (pp, v, m)
  std::map<std::tuple<int, int, int>, std::map<int, double>> by_v;  // (dp, pp, m) -> v -> bubble
  for (const auto& p : preds) {
    const Layout& L = p.layout;
    if (L.schedule != S::Interleaved) {
      EXPECT_EQ(L.virtual_stages, 1) << L.describe();
      continue;
    }
    EXPECT_GT(L.virtual_stages, 1);
    EXPECT_EQ(L.micro_batches % L.pp, 0) << L.describe();
    EXPECT_LE(L.pp * L.virtual_stages, 12) << L.describe();
    ASSERT_EQ(p.stage_first_block.size(), static_cast<size_t>(L.pp * L.virtual_stages + 1));
    seen.insert({L.pp, L.virtual_stages, L.micro_batches});
    // Equal costs: one transformer block alike per part (tp adds all-reduce time to the
    // embedding alone), so chunks of equal block counts.
    if (L.tp > 1 || 12 % (L.pp * L.virtual_stages) != 0) continue;
    EXPECT_LT(p.bubble, one_f_one_b.at({L.dp, L.tp, L.pp, L.micro_batches})) << L.describe();
    by_v[{L.dp, L.pp, L.micro_batches}][L.virtual_stages] = p.bubble;
  }
  // pp 2 (m 2, 4, 8, 16 of the 16 sequences at dp 1; 2, 4, 8 at dp 2): v = 2..6; pp 4: v = 2, 3.
  for (int v = 2; v <= 6; ++v)
    for (int m : {2, 4, 8, 16}) EXPECT_TRUE(seen.count({2, v, m})) << "pp 2, v " << v << ", m " << m;
  for (int v = 2; v <= 3; ++v)
    for (int m : {4, 8, 16}) EXPECT_TRUE(seen.count({4, v, m})) << "pp 4, v " << v << ", m " << m;
  EXPECT_FALSE(seen.count({4, 4, 4})) << "pp 4 x v 4 > 12 layers";
  EXPECT_FALSE(seen.count({4, 2, 2})) << "m 2 is not a multiple of pp 4";
  // More chunks per rank: a smaller bubble (Megatron: (p - 1) / (v m) of the ideal time).
  int compared = 0;
  for (const auto& [key, bubbles] : by_v) {
    for (auto it = bubbles.begin(); std::next(it) != bubbles.end(); ++it, ++compared)
      EXPECT_LT(std::next(it)->second, it->second) << "pp " << std::get<1>(key) << ", m "
                                                   << std::get<2>(key) << ", v " << it->first;
  }
  EXPECT_EQ(compared, 6);  // tp 1, pp 2 is dp 2: v 2, 3, 6 at m 2, 4, 8
  // Nothing interleaved when the run names a block range per rank.
  PlanRequest r = test::small_request(4);
  r.interleave = false;
  for (const auto& p : plan(r, equal_costs(), {})) EXPECT_NE(p.layout.schedule, S::Interleaved);
}

// A rank's chunks each keep a pool of activation sets (GptStageChunk), as many as the chunk
// ever has micro-batches between F and W. Interleaved pp 2, m 4, v 2 (3 blocks a chunk), stage 0:
//   F0 F1 F0' F1' F2 B0' F3 B1' F2' B0 F3' B1 B2' B3' B2 B3      (' = chunk 1, B with its W)
// chunk 0 reaches 4 micro-batches, chunk 1 two: 4 x (3 blocks + embedding) + 2 x 3 blocks, one
// set more than the 5 it has at once. 1F1B's stage 0: 2 x (6 blocks + embedding).
TEST(PlannerInterleaved, EachChunkKeepsItsOwnActivationSets) {
  const PlanRequest r = test::small_request(2);
  const Prediction one = predict(r, equal_costs(), {}, {1, 1, 2, S::OneFOneB, 1, 4});
  const Prediction inter = predict(r, equal_costs(), {}, {1, 1, 2, S::Interleaved, 2, 4});
  ASSERT_EQ(inter.stage_first_block, (std::vector<int>{0, 3, 6, 9, 12}));
  // One set of a chunk of `blocks` (micro-batches of 16 / 4 sequences), by the model's plan.
  auto set = [&](int blocks, bool embedding) {
    const ModelShard chunk{0, 1, 0, blocks, embedding, /*has_head=*/false};
    return static_cast<double>(
        activation_plan(r.model, activation_shape(r.model, chunk, 0,
                                                  {16 / 4, r.seq, Recompute::kNone, false,
                                                   equal_costs().threads}))
            .set());
  };
  // Same blocks, parameters and scratch per rank: the difference is the sets only.
  const double extra = 4 * set(3, true) + 2 * set(3, false) - 2 * set(6, true);
  EXPECT_NEAR(inter.memory_gb - one.memory_gb, extra / 1e9, 1e-12);
}

// --parallel auto: a memory limit that only pipelined layouts meet, and costs under which
// interleaving has the smallest bubble, make the planner choose an interleaved layout; written
// into the run's config it is one parse_run_config accepts, with its virtual stages.
TEST(PlannerInterleaved, ParallelAutoPassesTheChosenVirtualStagesToTraining) {
  const nlohmann::json j = {
      {"model", {{"vocab_size", 1000}, {"context_len", 64}, {"n_layer", 12}, {"n_head", 12}, {"d_model", 96}}},
      {"train", {{"nproc", 2}, {"batch_size", 4}, {"seq_len", 64}, {"parallel", "auto"},
                 {"data_dir", "unused"}, {"out_dir", "unused"}}}};
  RunConfig config = parse_run_config(j, "test");
  PlanRequest req = auto_request(config, 0);
  EXPECT_EQ(req.global_batch, 8);
  EXPECT_TRUE(req.interleave);
  const KernelCosts k = equal_costs();
  const Prediction data_parallel = predict(req, k, {}, {2, 1, 1, S::OneFOneB, 1, 1});
  double pipelined_mem = 1e30;
  for (const auto& p : plan(req, k, {}))
    if (p.layout.pp > 1) pipelined_mem = std::min(pipelined_mem, p.memory_gb);
  ASSERT_LT(pipelined_mem, data_parallel.memory_gb);
  // The largest interleaved footprint fits, the replicated model does not.
  double inter_mem = 0;
  for (const auto& p : plan(req, k, {}))
    if (p.layout.schedule == S::Interleaved) inter_mem = std::max(inter_mem, p.memory_gb);
  ASSERT_LT(inter_mem, data_parallel.memory_gb) << "the test's limit would admit dp 2";
  req.mem_gb = inter_mem * 1.001;
  const Prediction best = best_trainable_layout(req, k, {});
  ASSERT_EQ(best.layout.schedule, S::Interleaved) << best.layout.describe();
  EXPECT_EQ(best.layout.pp, 2);

  const auto flags = apply_layout(config.train, best.layout, req.global_batch);
  EXPECT_EQ(flags.at("virtual_stages"), std::to_string(best.layout.virtual_stages));
  EXPECT_EQ(flags.at("schedule"), "interleaved");
  const RunConfig chosen = parse_run_config(to_json(config), "chosen");  // validated
  EXPECT_EQ(chosen.train.parallel, LayoutChoice::kManual);
  EXPECT_EQ(chosen.train.pp, 2);
  EXPECT_EQ(chosen.train.schedule, pipeline::ScheduleKind::Interleaved);
  EXPECT_EQ(chosen.train.virtual_stages, best.layout.virtual_stages);
  EXPECT_EQ(chosen.train.micro_batches, best.layout.micro_batches);
  EXPECT_EQ(chosen.train.batch_size, 8);  // dp 1: the whole global batch

  // --rebalance re-partitions one stage per rank: its auto request plans no interleaving.
  nlohmann::json jr = j;
  jr["train"]["rebalance"] = true;
  jr["train"]["save_freq"] = 10;
  EXPECT_FALSE(auto_request(parse_run_config(jr, "test"), 0).interleave);
}

TEST(PlannerZero, Zero2PlansNoPipelineAndCountsShardedGradientBytes) {
  const KernelCosts k = equal_costs();
  PlanRequest r = test::small_request(4);
  r.zero = 2;
  std::set<std::tuple<int, int, int>> shapes;
  for (const auto& p : plan(r, k, {})) shapes.insert({p.layout.dp, p.layout.tp, p.layout.pp});
  EXPECT_EQ(shapes, (std::set<std::tuple<int, int, int>>{{4, 1, 1}, {2, 2, 1}, {1, 4, 1}}));
  EXPECT_THROW(predict(r, k, {}, {2, 1, 2, S::OneFOneB, 1, 2}), Error);
  // Memory at dp 4: ZeRO 0 -> 1 shards the moments (2 floats a parameter, 3/4 of them gone),
  // 1 -> 2 replaces the whole gradient with ShardedGradients' planned bytes (rank 0's).
  r.bucket_mb = 0.05;  // several buckets over this small model, so some are pooled and sharded
  const Layout dp4{4, 1, 1, S::OneFOneB, 1, 1};
  r.zero = 0;
  const Prediction z0 = predict(r, k, {}, dp4);
  r.zero = 1;
  const Prediction z1 = predict(r, k, {}, dp4);
  r.zero = 2;
  const Prediction z2 = predict(r, k, {}, dp4);
  const double params = (z0.memory_gb - z1.memory_gb) * 1e9 / (8 * 0.75);
  EXPECT_NEAR(params, static_cast<double>(r.model.num_params()), 0.01 * r.model.num_params());
  const double planned = static_cast<double>(parallel::ShardedGradients::planned_bytes(
      gpt_param_layout(r.model), static_cast<size_t>(0.05 * (1 << 20)), 4, 0));
  ASSERT_LT(planned, 4 * params) << "ZeRO-2 saves gradient memory here";
  EXPECT_NEAR(z1.memory_gb - z2.memory_gb, (4 * params - planned) / 1e9, 1e-12);
  // The optimizer runs on a quarter of the parameters under ZeRO; the dp traffic is the same
  // (reduce-scatter + all-gather move what one all-reduce moves).
  EXPECT_NEAR(z0.optimizer_s, 4 * z1.optimizer_s, 1e-15);
  EXPECT_DOUBLE_EQ(z1.optimizer_s, z2.optimizer_s);
  EXPECT_DOUBLE_EQ(z0.dp_comm_s, z2.dp_comm_s);
}

}  // namespace
}  // namespace loom::planner
