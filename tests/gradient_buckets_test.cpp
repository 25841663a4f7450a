// GradientBuckets' bookkeeping on a single-rank communicator (the multi-rank behaviour is covered
// end to end by data_parallel_test.cpp).
#include <gtest/gtest.h>

#include <vector>

#include "loom/comm/communicator.hpp"
#include "loom/core/check.hpp"
#include "loom/parallel/gradient_buckets.hpp"

namespace loom {
namespace {

std::unique_ptr<comm::Communicator> solo() {
  comm::CommOptions o;
  o.backend = "solo";
  return comm::communicator_from_env(o);
}

TEST(GradientBuckets, PlansBucketsOfTheGivenSizeFromTheEnd) {
  auto c = solo();
  std::vector<float> g(1000, 1.0f);
  EXPECT_EQ(parallel::GradientBuckets(*c, g.data(), g.size(), 400 * sizeof(float)).num_buckets(), 3u);
  EXPECT_EQ(parallel::GradientBuckets(*c, g.data(), g.size(), 1 << 20).num_buckets(), 1u);
  EXPECT_THROW(parallel::GradientBuckets(*c, g.data(), g.size(), 0), Error);
}

TEST(GradientBuckets, SlicesMustArriveInReverseOrderWithoutGaps) {
  auto c = solo();
  std::vector<float> g(1000, 2.0f);
  parallel::GradientBuckets b(*c, g.data(), g.size(), 100 * sizeof(float));
  b.on_ready(900, 1000);
  b.on_ready(450, 900);
  EXPECT_THROW(b.on_ready(100, 200), Error);  // [200, 450) would not be final yet
  b.finish();
  for (float x : g) ASSERT_EQ(x, 2.0f);  // the average over one rank is the gradient itself
  b.begin();  // the next step starts from the end again
  b.on_ready(0, 1000);
  b.finish();
}

}  // namespace
}  // namespace loom
