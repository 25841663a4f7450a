// A rank that dies or stops answering mid-collective: the others fail in bounded time with an
// error naming the operation, the group and the missing rank; the launcher says which rank died;
// --max-restarts brings a job that failed once to completion.
#include <gtest/gtest.h>

#include <unistd.h>

#include "comm_process_util.hpp"

namespace loom::test {
namespace {

// Starts 3 ranks of `comm check <fault args>` by hand (the LOOM_* variables the launcher would
// set), so the survivors are not stopped by a launcher and we see their own errors.
ProcessResult run_three_ranks_by_hand(const std::string& fault_args, int timeout_s) {
  const std::string seg = "/loom-test-" + std::to_string(getpid());
  std::string script;
  for (int r = 0; r < 3; ++r)
    script += "LOOM_SHM_NAME=" + seg + " LOOM_RANK=" + std::to_string(r) +
              " LOOM_WORLD_SIZE=3 " + loom() + " comm check --timeout 3 " + fault_args +
              " & p" + std::to_string(r) + "=$!; ";
  // Wait for the survivors (ranks 0 and 2 or 0 and 1), then make sure nothing is left behind.
  script += "rc=0; for p in $p0 $p1 $p2; do wait $p || rc=$?; done; echo exit=$rc; ";
  script += "rm -f /dev/shm" + seg;
  return run_shell(script, timeout_s);
}

TEST(CommFailure, ShmSurvivorsOfAKilledRankNameItWithinTheTimeout) {
  const auto r = run_three_ranks_by_hand("--fault kill --fault-rank 1 --fault-after-ms 300", 60);
  EXPECT_EQ(r.output.find("exit=0"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("allreduce (ring, 4194304 x f32) in group 'world' [ranks 0,1,2]: rank 1"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("is gone"), std::string::npos) << r.output;
  EXPECT_LT(r.seconds, 20) << r.output;
}

TEST(CommFailure, ShmSurvivorsOfAStoppedRankTimeOutNamingIt) {
  // SIGSTOPped rank 2: alive but silent. The script's `wait` would wait for it forever, so it is
  // killed from here once the survivors have failed.
  const std::string seg = "/loom-test-stop-" + std::to_string(getpid());
  std::string script;
  for (int r = 0; r < 3; ++r)
    script += "LOOM_SHM_NAME=" + seg + " LOOM_RANK=" + std::to_string(r) + " LOOM_WORLD_SIZE=3 " +
              loom() + " comm check --timeout 2 --fault stop --fault-rank 2 & p" +
              std::to_string(r) + "=$!; ";
  script += "wait $p0; a=$?; wait $p1; b=$?; kill -9 $p2; wait $p2; echo exit=$a,$b; ";
  script += "rm -f /dev/shm" + seg;
  const auto r = run_shell(script, 60);
  EXPECT_NE(r.output.find("exit=75,75"), std::string::npos) << r.output;  // comm::kPeerFailureExitCode
  EXPECT_NE(r.output.find("in group 'world' [ranks 0,1,2]: timed out waiting for rank 2"),
            std::string::npos)
      << r.output;
  EXPECT_LT(r.seconds, 20) << r.output;
}

TEST(CommFailure, LauncherReportsTheDeadRankAndExitsNonZero) {
  const auto r = run_shell(loom() + " launch --nproc 3 -- comm check --timeout 3 --fault kill "
                                    "--fault-rank 1 --fault-after-ms 300",
                           60);
  EXPECT_EQ(r.exit_code, 128 + 9) << r.output;
  EXPECT_NE(r.output.find("loom launch: rank 1 (pid"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("was killed by signal 9"), std::string::npos) << r.output;
  EXPECT_LT(r.seconds, 20) << r.output;
}

TEST(CommFailure, LauncherReportsAnExitCode) {
  const auto r = run_shell(loom() + " launch --nproc 2 -- comm check --fault exit "
                                    "--fault-rank 0 --fault-after-ms 100",
                           60);
  EXPECT_EQ(r.exit_code, 7) << r.output;
  EXPECT_NE(r.output.find("loom launch: rank 0 (pid"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("exited with code 7"), std::string::npos) << r.output;
}

TEST(CommFailure, MaxRestartsCompletesAJobThatFailedOnce) {
  const std::string cmd = " -- comm check --counts 1,1001 --fault exit-first-attempt --fault-rank 1";
  const auto without = run_shell(loom() + " launch --nproc 3" + cmd, 60);
  EXPECT_EQ(without.exit_code, 3) << without.output;
  const auto with = run_shell(loom() + " launch --nproc 3 --max-restarts 1" + cmd, 60);
  EXPECT_EQ(with.exit_code, 0) << with.output;
  EXPECT_NE(with.output.find("loom launch: rank 1 (pid"), std::string::npos) << with.output;
  EXPECT_NE(with.output.find("restarting all 3 ranks (restart 1 of 1)"), std::string::npos)
      << with.output;
  EXPECT_NE(with.output.find("comm check: backend shm, 3 ranks"), std::string::npos)
      << with.output;
}

#ifdef LOOM_WITH_MPI
TEST(CommFailure, MpiKilledRankEndsTheJobInBoundedTime) {
  const auto r = run_shell("mpirun --oversubscribe -np 3 " + loom() +
                               " comm check --backend mpi --timeout 3 --fault kill "
                               "--fault-rank 1 --fault-after-ms 300",
                           60);
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_NE(r.exit_code, 124) << "timed out: " << r.output;
  EXPECT_LT(r.seconds, 30) << r.output;
}
#endif

}  // namespace
}  // namespace loom::test
