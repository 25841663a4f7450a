// Balanced contiguous partition: minimises the slowest stage (checked against every possible
// partition) and moves blocks away from a stage holding an expensive LM head.
#include <gtest/gtest.h>

#include <functional>

#include "loom/core/check.hpp"
#include "loom/parallel/pipeline/partition.hpp"

namespace loom::pipeline {
namespace {

// The slowest stage of the best partition, by trying every one.
double brute_force_slowest(const PartCosts& c, int S) {
  const int L = static_cast<int>(c.block.size());
  double best = 1e300;
  std::vector<int> first(S + 1);
  first[0] = 0;
  first[S] = L;
  std::function<void(int)> rec = [&](int k) {
    if (k == S) {
      double worst = 0;
      for (int s = 0; s < S; ++s) {
        double x = 0;
        for (int b = first[s]; b < first[s + 1]; ++b) x += c.block[b];
        if (s == 0) x += c.embedding;
        if (s == S - 1) x += c.head;
        worst = std::max(worst, x);
      }
      best = std::min(best, worst);
      return;
    }
    for (int i = first[k - 1] + 1; i <= L - (S - k); ++i) {
      first[k] = i;
      rec(k + 1);
    }
  };
  rec(1);
  return best;
}

TEST(PipelinePartition, IsOptimalAgainstBruteForce) {
  PartCosts c;
  c.block = {3, 1, 4, 1, 5, 9, 2, 6, 5, 3};
  c.embedding = 2;
  c.head = 7;
  for (int S = 1; S <= 10; ++S) {
    const Partition p = balanced_partition(c, S);
    EXPECT_DOUBLE_EQ(p.slowest(), brute_force_slowest(c, S)) << "S=" << S;
    ASSERT_EQ(p.first.size(), static_cast<size_t>(S + 1));
    for (int k = 0; k < S; ++k) EXPECT_LT(p.first[k], p.first[k + 1]);  // >= 1 block each
  }
}

TEST(PipelinePartition, GivesTheStageWithTheHeadFewerBlocks) {
  // gpt2-small-like: 12 equal blocks, an LM head of about two blocks.
  PartCosts c;
  c.block.assign(12, 1.0);
  c.embedding = 0.1;
  c.head = 2.0;
  const Partition even = even_partition(c, 2), bal = balanced_partition(c, 2);
  EXPECT_EQ(even.first, (std::vector<int>{0, 6, 12}));
  EXPECT_DOUBLE_EQ(even.slowest(), 8.0);
  EXPECT_EQ(bal.first, (std::vector<int>{0, 7, 12}));
  EXPECT_DOUBLE_EQ(bal.slowest(), 7.1);
  EXPECT_NE(bal.describe().find("stage 1: blocks 7-11 + head"), std::string::npos) << bal.describe();
}

TEST(PipelinePartition, MoreStagesThanBlocksIsAnError) {
  PartCosts c;
  c.block.assign(4, 1.0);
  EXPECT_THROW(balanced_partition(c, 5), Error);
  EXPECT_THROW(balanced_partition(c, 0), Error);
}

}  // namespace
}  // namespace loom::pipeline
