#include "loom/core/rng.hpp"

#include <gtest/gtest.h>

#include <cmath>

namespace loom {

TEST(Rng, SameSeedSameStreamDifferentSeedDifferentStream) {
  Rng a(42), b(42), c(43);
  for (int i = 0; i < 100; ++i) {
    const uint64_t x = a.next_u64();
    EXPECT_EQ(x, b.next_u64());
    EXPECT_NE(x, c.next_u64());
  }
}

TEST(Rng, RestoredStateContinuesTheStream) {
  Rng a(7);
  for (int i = 0; i < 10; ++i) a.next_u64();
  Rng b(0);
  b.set_state(a.state());
  for (int i = 0; i < 100; ++i) EXPECT_EQ(a.next_u64(), b.next_u64());
}

TEST(Rng, DistributionsHaveTheRightMoments) {
  Rng r(1);
  const int n = 200000;
  double su = 0, sn = 0, sn2 = 0;
  for (int i = 0; i < n; ++i) {
    const float u = r.uniform();
    ASSERT_GE(u, 0.0f);
    ASSERT_LT(u, 1.0f);
    su += u;
    const double g = r.normal();
    sn += g;
    sn2 += g * g;
  }
  EXPECT_NEAR(su / n, 0.5, 0.005);
  EXPECT_NEAR(sn / n, 0.0, 0.01);
  EXPECT_NEAR(sn2 / n, 1.0, 0.02);
}

TEST(Rng, BelowStaysInRangeAndHitsEveryValue) {
  Rng r(3);
  int counts[7] = {};
  for (int i = 0; i < 7000; ++i) {
    const uint64_t k = r.below(7);
    ASSERT_LT(k, 7u);
    counts[k]++;
  }
  for (int c : counts) EXPECT_GT(c, 800);
}

}  // namespace loom
