// The multi-host drill (scripts/netns_drill.sh): two network namespaces as hosts, two Open MPI
// ranks each (shared memory inside a host, MPI across); dp 4 and dp 2 x tp 2 (ranks dealt
// round-robin) equal one rank, a killed rank of either host is named with its host, a lost link is
// named within the timeout, and --resume auto finishes byte-identical. Skipped, saying why, where
// namespaces cannot be made (not root) or Open MPI is missing.
#include <gtest/gtest.h>

#include "train_cli_util.hpp"

namespace loom {
namespace {

TEST(NetnsDrill, TwoHostsOfTwoMatchOneRankNameALostRankOrLinkAndResume) {
  const auto r = testing::run_bounded(std::string("env LOOM_BIN=") + LOOM_BINARY + " bash " +
                                          LOOM_SOURCE_DIR + "/scripts/netns_drill.sh",
                                      420);
  if (r.rc == 77) GTEST_SKIP() << r.out;
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("PASS: dp 4 on 2 hosts x 2 ranks matches 1 rank"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("PASS: dp 2 x tp 2 (ranks dealt round-robin) on 2 hosts x 2 ranks matches 1 rank"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("PASS: rank 1 killed -> "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("PASS: rank 2 killed -> "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("PASS: link down -> "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("timed out"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("PASS: resumed with --resume auto"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace loom
