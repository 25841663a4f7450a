// LOOM_COMM_DEBUG=1: ranks that call mismatched collectives (another count, another reduce op)
// all fail at once with an error naming every rank's call; without it, the transport's checks
// and timeout still end the job.
#include <gtest/gtest.h>

#include <unistd.h>

#include "comm_process_util.hpp"

namespace loom::test {
namespace {

// Two ranks of `comm check --fault <fault> --fault-rank 1`, started by hand so that each rank's
// own error is seen (a launcher would stop the second rank once the first failed).
ProcessResult run_two_ranks(const std::string& env, const std::string& fault) {
  const std::string seg = "/loom-test-dbg-" + std::to_string(getpid()) + fault;
  std::string script;
  for (int r = 0; r < 2; ++r)
    script += env + " LOOM_SHM_NAME=" + seg + " LOOM_RANK=" + std::to_string(r) +
              " LOOM_WORLD_SIZE=2 " + loom() + " comm check --timeout 3 --fault " + fault +
              " --fault-rank 1 & p" + std::to_string(r) + "=$!; ";
  script += "wait $p0; a=$?; wait $p1; b=$?; echo exit=$a,$b; rm -f /dev/shm" + seg;
  return run_shell(script, 60);
}

TEST(CommDebug, CountMismatchIsNamedOnEveryRankAtOnce) {
  const auto r = run_two_ranks("LOOM_COMM_DEBUG=1", "mismatch-count");
  EXPECT_NE(r.output.find("exit=1,1"), std::string::npos) << r.output;
  // Each rank's error names both calls.
  const std::string calls =
      "collective mismatch (LOOM_COMM_DEBUG): rank 0 called #0 allreduce(1000 x f32, sum, root 0, "
      "ring, group ";
  size_t first = r.output.find(calls);
  ASSERT_NE(first, std::string::npos) << r.output;
  EXPECT_NE(r.output.find(calls, first + 1), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("rank 1 called #0 allreduce(1001 x f32, sum"), std::string::npos) << r.output;
  EXPECT_LT(r.seconds, 5) << r.output;
}

TEST(CommDebug, ReduceOpMismatchIsNamed) {
  const auto r = run_two_ranks("LOOM_COMM_DEBUG=1", "mismatch-op");
  EXPECT_NE(r.output.find("exit=1,1"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("rank 1 called #0 allreduce(1000 x f32, avg"), std::string::npos) << r.output;
  EXPECT_LT(r.seconds, 5) << r.output;
}

TEST(CommDebug, WithoutDebugACountMismatchStillFailsInBoundedTime) {
  const auto r = run_two_ranks("LOOM_COMM_DEBUG=0", "mismatch-count");
  EXPECT_EQ(r.output.find("exit=0,0"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("collective mismatch"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("allreduce (ring, 100"), std::string::npos) << r.output;
  EXPECT_LT(r.seconds, 20) << r.output;
}

TEST(CommDebug, MatchingCallsPassTheCheck) {
  const auto r = run_shell("LOOM_COMM_DEBUG=1 " + loom() +
                               " launch --nproc 2 -- comm check --counts 1,1001 --algos ring,tree",
                           60);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  // Rank 0's lines are printed as they are under the launcher.
  EXPECT_EQ(r.output.find("[rank 0]"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("comm check: backend shm, 2 ranks"), std::string::npos) << r.output;
}

TEST(CommDebug, BadValueIsAClearError) {
  const auto r = run_shell("LOOM_COMM_DEBUG=yes " + loom() + " launch --nproc 2 -- comm check", 60);
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("LOOM_COMM_DEBUG='yes': expected 0 or 1"), std::string::npos) << r.output;
}

TEST(CommDebug, LauncherPrefixesOnlyTheOtherRanksLines) {
  const auto r = run_shell(loom() + " launch --nproc 2 -- comm check --counts 1 --fault "
                                    "exit-first-attempt --fault-rank 1", 60);
  EXPECT_EQ(r.exit_code, 3) << r.output;
  EXPECT_NE(r.output.find("[rank 1] comm check: rank 1 fails on purpose"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("[rank 0]"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace loom::test
