// Activation recomputation end to end: `loom train --recompute selective|full` on one rank, at
// tp 2 and on 2 pipeline stages (1F1B; selective also under zb1p) trains exactly as the 1-rank
// run without recomputation (losses, final parameters and moments).
#include <gtest/gtest.h>

#include <string>

#include "layout_equivalence.hpp"

namespace loom {
namespace {
using testing::Result;

class RecomputeCli : public testing::LayoutEquivalenceTest {
 protected:
  void SetUp() override { make_config(2); }
};

TEST_F(RecomputeCli, EveryLayoutMatchesTheRunWithoutRecomputation) {
  for (const auto& [out, flags] :
       {std::pair<std::string, std::string>{"selective", "--batch_size 4 --recompute selective"},
        {"full", "--batch_size 4 --recompute full"},
        {"tp2full", "--nproc 2 --tp 2 --batch_size 4 --recompute full"},
        {"pp2full", "--nproc 2 --pp 2 --batch_size 4 --recompute full"},
        {"pp2zbselective", "--nproc 2 --pp 2 --batch_size 4 --schedule zb1p --recompute selective"}}) {
    const Result r = train(out, flags);
    ASSERT_EQ(r.rc, 0) << out << "\n" << r.out;
    expect_matches_reference(out);
  }
}

}  // namespace
}  // namespace loom
