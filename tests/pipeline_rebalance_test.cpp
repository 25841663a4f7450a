// --rebalance's decision and --partition's parsing, on synthetic stage times: a stage measured
// slower than predicted hands blocks to the others, measured times within the threshold or a
// partition that cannot do better keep the blocks where they are, and bad block lists are
// refused naming the flag.
#include <gtest/gtest.h>

#include "error_of.hpp"
#include "loom/core/check.hpp"
#include "loom/parallel/pipeline/rebalance.hpp"

namespace loom::pipeline {
namespace {

// 6 blocks of cost 1, embedding 0.1, head 0.5.
PartCosts six_blocks() { return PartCosts{std::vector<double>(6, 1.0), 0.1, 0.5}; }

TEST(Rebalance, AnUnevenStartMovesToTheBalancedPartition) {
  const Partition start = partition_with_blocks(six_blocks(), {1, 5}, 2, "--partition");
  // Measured as predicted: stage 1 is 5.5 / 1.1 = 5x slower than stage 0.
  const RebalanceDecision d = decide_rebalance(start, start.cost, 0.10);
  EXPECT_TRUE(d.imbalanced);
  EXPECT_NEAR(d.slowest_over_mean, 5.5 / 3.3, 1e-12);
  ASSERT_TRUE(d.repartition);
  EXPECT_EQ(d.next.blocks(), balanced_partition(six_blocks(), 2).blocks());
  EXPECT_EQ(d.next.blocks_text(), "3,3");
  EXPECT_NE(d.describe(start).find("blocks 1,5 -> 3,3"), std::string::npos) << d.describe(start);
}

TEST(Rebalance, MeasuredSlownessOfAStageMovesBlocksAwayFromIt) {
  // Balanced by the start-up costs (3 + 3), but stage 0 is measured twice as slow as predicted:
  // its blocks (and the embedding) cost twice their start-up costs, wherever they go.
  const Partition start = partition_with_blocks(six_blocks(), {3, 3}, 2, "--partition");
  const RebalanceDecision d = decide_rebalance(start, {2 * start.cost[0], start.cost[1]}, 0.10);
  ASSERT_TRUE(d.repartition);
  EXPECT_EQ(d.next.blocks_text(), "2,4");
  // The corrected prediction: stage 0 = 2 blocks x 2 + embedding 0.2 = 4.2, stage 1 = block 2
  // (2) + 3 blocks x 1 + head 0.5 = 5.5, below the measured 6.2.
  EXPECT_NEAR(d.next.cost[0], 4.2, 1e-12);
  EXPECT_NEAR(d.next.slowest(), 5.5, 1e-12);
}

TEST(Rebalance, WithinTheThresholdNothingChanges) {
  const Partition start = partition_with_blocks(six_blocks(), {3, 3}, 2, "--partition");
  const RebalanceDecision d = decide_rebalance(start, {3.1, 3.4}, 0.10);  // 1.05x the mean
  EXPECT_FALSE(d.imbalanced);
  EXPECT_FALSE(d.repartition);
  EXPECT_NE(d.describe(start).find("partition kept (blocks 3,3)"), std::string::npos);
}

TEST(Rebalance, AnImbalanceNoContiguousPartitionCanFixIsKept) {
  // 2 blocks on 2 stages: however slow stage 1 is, each stage must keep its block.
  const Partition start = partition_with_blocks(PartCosts{{1.0, 1.0}, 0, 0}, {1, 1}, 2, "--partition");
  const RebalanceDecision d = decide_rebalance(start, {1.0, 3.0}, 0.10);
  EXPECT_TRUE(d.imbalanced);
  EXPECT_FALSE(d.repartition);
  // 4 blocks, stage 1 measured 1.5x stage 0 (1.2x the mean): its blocks cost 0.75 each, and
  // moving one to stage 0 would make that stage 1.0 + 0.75 = 1.75 > 1.5, so the blocks stay.
  const Partition four = partition_with_blocks(PartCosts{std::vector<double>(4, 0.5), 0, 0}, {2, 2}, 2, "--partition");
  const RebalanceDecision e = decide_rebalance(four, {1.0, 1.5}, 0.10);
  EXPECT_TRUE(e.imbalanced);
  EXPECT_FALSE(e.repartition) << e.next.blocks_text();
}

TEST(Rebalance, BadStageBlocksAreRefusedNamingTheFlag) {
  EXPECT_EQ(parse_stage_blocks("", 6, 2, "--partition"), std::vector<int>{});
  EXPECT_EQ(parse_stage_blocks("1,5", 6, 2, "--partition"), (std::vector<int>{1, 5}));
  for (const auto& [text, message] : std::vector<std::pair<std::string, std::string>>{
           {"1,2,3", "--partition: 3 block counts for 2 pipeline stages"},
           {"2,2", "--partition: the block counts add up to 4, the model has 6 blocks"},
           {"0,6", "expected blocks per stage as positive integers"},
           {"3,x", "expected blocks per stage as positive integers"},
           {"3,", "expected blocks per stage as positive integers"},
           {"3;3", "expected blocks per stage as positive integers"}}) {
    const std::string e = test::error_of([&] { parse_stage_blocks(text, 6, 2, "--partition"); });
    EXPECT_NE(e.find(message), std::string::npos) << text << ": " << e;
  }
  EXPECT_THROW(Rebalancer(partition_with_blocks(six_blocks(), {3, 3}, 2, "x"), 0), Error);
}

}  // namespace
}  // namespace loom::pipeline
