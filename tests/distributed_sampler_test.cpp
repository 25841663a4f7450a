#include "loom/data/distributed_sampler.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <tuple>

#include "loom/core/check.hpp"

namespace loom {
namespace {

std::vector<std::vector<size_t>> all_ranks(size_t n, int world, bool shuffle, uint64_t seed,
                                           bool drop_last, uint64_t epoch) {
  std::vector<std::vector<size_t>> out;
  for (int r = 0; r < world; ++r) {
    DistributedSampler s(n, world, r, shuffle, seed, drop_last);
    s.set_epoch(epoch);
    out.push_back(s.indices());
    EXPECT_EQ(out.back().size(), s.num_samples());
  }
  return out;
}

// For many (size, world) pairs: every rank has the same count; without drop_last the ranks
// together cover every index, and the only repeats are the padding (total - n extra samples);
// with drop_last no index repeats and exactly n - n % world are used.
TEST(DistributedSampler, RanksCoverTheEpochOnceEqualCountsPaddingAccounted) {
  for (const size_t n : {0u, 1u, 2u, 7u, 10u, 64u, 101u}) {
    for (const int world : {1, 2, 3, 4, 8}) {
      for (const bool shuffle : {false, true}) {
        for (const bool drop_last : {false, true}) {
          SCOPED_TRACE(::testing::Message() << "n=" << n << " world=" << world
                                          << " shuffle=" << shuffle << " drop_last=" << drop_last);
          const auto ranks = all_ranks(n, world, shuffle, 7, drop_last, 3);
          std::map<size_t, int> seen;
          for (const auto& r : ranks) {
            EXPECT_EQ(r.size(), ranks[0].size());
            for (const size_t i : r) {
              ASSERT_LT(i, n);
              ++seen[i];
            }
          }
          const size_t total = ranks[0].size() * world;
          if (drop_last) {
            EXPECT_EQ(total, n - n % world);
            EXPECT_EQ(seen.size(), total);  // disjoint
          } else {
            EXPECT_EQ(total, (n + world - 1) / world * world);
            EXPECT_EQ(seen.size(), n);  // every index at least once
            size_t repeats = 0;
            for (const auto& [index, count] : seen) repeats += count - 1;
            EXPECT_EQ(repeats, total - n);  // only the padding repeats
          }
        }
      }
    }
  }
}

TEST(DistributedSampler, ShuffleDependsOnSeedPlusEpochOnly) {
  const size_t n = 1000;
  const auto e0 = all_ranks(n, 4, true, 11, false, 0);
  EXPECT_EQ(e0, all_ranks(n, 4, true, 11, false, 0));  // same across runs
  EXPECT_NE(e0, all_ranks(n, 4, true, 11, false, 1));  // reshuffled per epoch
  EXPECT_NE(e0, all_ranks(n, 4, true, 12, false, 0));  // seed matters
  EXPECT_EQ(all_ranks(n, 4, true, 11, false, 1), all_ranks(n, 4, true, 10, false, 2));
  // Without shuffle: PyTorch's strided split of 0..n-1.
  const auto plain = all_ranks(10, 4, false, 0, false, 5);
  EXPECT_EQ(plain[0], (std::vector<size_t>{0, 4, 8}));
  EXPECT_EQ(plain[1], (std::vector<size_t>{1, 5, 9}));
  EXPECT_EQ(plain[2], (std::vector<size_t>{2, 6, 0}));  // padded with the head
  EXPECT_EQ(plain[3], (std::vector<size_t>{3, 7, 1}));
}

// Rank r's step s of a world of W is, interleaved, the single-rank order: so the permutation does
// not depend on the world size, and resizing a job keeps the data order.
TEST(DistributedSampler, InterleavedRanksEqualTheSingleRankOrder) {
  const size_t n = 96;
  const auto single = all_ranks(n, 1, true, 5, true, 2)[0];
  for (const int world : {2, 3, 4, 6}) {
    const auto ranks = all_ranks(n, world, true, 5, true, 2);
    for (size_t p = 0; p < n; ++p) EXPECT_EQ(ranks[p % world][p / world], single[p]);
  }
}

TEST(DistributedSampler, RejectsBadRankOrWorld) {
  EXPECT_THROW(DistributedSampler(10, 0, 0, false, 0, false), Error);
  EXPECT_THROW(DistributedSampler(10, 2, 2, false, 0, false), Error);
  EXPECT_THROW(DistributedSampler(10, 2, -1, false, 0, false), Error);
}

}  // namespace
}  // namespace loom
