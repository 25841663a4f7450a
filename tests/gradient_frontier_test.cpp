// The order in which a pipeline step hands its finished gradient slices to the data-parallel
// hook (parallel/pipeline/gradient_frontier): always from the buffer's end to its start, each
// slice adjoining the last, whatever order the chunks finish them in; the held range (the tied
// wte under pp > 1) only once it is released.
#include "loom/parallel/pipeline/gradient_frontier.hpp"

#include <gtest/gtest.h>

#include <utility>
#include <vector>

#include "error_of.hpp"

namespace loom::pipeline {
namespace {

using Slices = std::vector<std::pair<size_t, size_t>>;

TEST(GradientFrontier, PassesSlicesOnInBufferOrderWhateverOrderTheyFinishIn) {
  Slices got;
  GradientFrontier f(100, [&](size_t b, size_t e) { got.push_back({b, e}); });
  f.ready(40, 70);  // an earlier chunk finishes first: it waits for [70, 100)
  EXPECT_TRUE(got.empty());
  EXPECT_EQ(f.frontier(), 100u);
  f.ready(90, 100);
  f.ready(70, 90);
  EXPECT_EQ(got, (Slices{{90, 100}, {70, 90}, {40, 70}}));
  f.ready(0, 40);
  EXPECT_EQ(got.back(), (std::pair<size_t, size_t>{0, 40}));
  EXPECT_EQ(f.frontier(), 0u);
}

TEST(GradientFrontier, HoldsTheTiedRangeBackUntilReleased) {
  Slices got;
  GradientFrontier f(100, [&](size_t b, size_t e) { got.push_back({b, e}); }, {0, 30});
  f.ready(50, 100);
  f.ready(0, 50);  // the embedding's slice: wte [0, 30) and wpe [30, 50)
  EXPECT_EQ(got, (Slices{{50, 100}, {30, 50}}));
  EXPECT_EQ(f.frontier(), 30u);
  f.release_held();
  EXPECT_EQ(got.back(), (std::pair<size_t, size_t>{0, 30}));
  EXPECT_EQ(f.frontier(), 0u);
}

TEST(GradientFrontier, WithoutAHookDoesNothing) {
  GradientFrontier f(100, {}, {0, 30});
  f.ready(0, 100);
  f.release_held();
  EXPECT_EQ(f.frontier(), 100u);
}

TEST(GradientFrontier, RejectsSlicesOutsideTheBufferOrTwice) {
  GradientFrontier f(100, [](size_t, size_t) {});
  EXPECT_NE(test::error_of([&] { f.ready(90, 101); }).find("outside the 100 gradients"),
            std::string::npos);
  f.ready(50, 60);
  EXPECT_NE(test::error_of([&] { f.ready(50, 60); }).find("reported twice"), std::string::npos);
}

}  // namespace
}  // namespace loom::pipeline
