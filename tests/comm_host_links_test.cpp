// Point to point by peer (Communicator::link_name): under MPI a peer on this rank's host is
// reached through a shared-memory segment of the group's ranks on that host, a peer on another
// host through MPI, under one communicator; `loom comm check` sends between every pair and takes
// messages from several links with wait_any. Hosts simulated with LOOM_HOST_MAP.
#include <gtest/gtest.h>

#include "comm_process_util.hpp"

namespace loom::test {
namespace {

// `loom comm check` on 4 ranks (one collective, small counts: the point-to-point part matters),
// started by `launcher` (ending in `--` for `loom launch`, in its options for mpirun).
ProcessResult check(const std::string& launcher, bool loom_launch = false) {
  return run_shell(launcher + (loom_launch ? " " : " " + loom() + " ") +
                       "comm check --timeout 60 --ops allreduce --algos ring --counts 1,7",
                   180);
}

void expect_links(const ProcessResult& r, const std::string& links) {
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output.find("FAILED"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("comm check: point to point from rank 0: " + links + "\n"),
            std::string::npos)
      << r.output;
}

TEST(CommHostLinks, LoomLaunchTalksThroughMemoryToEveryPeer) {
  expect_links(check("LOOM_HOST_MAP=0,0,1,1 " + loom() + " launch --nproc 4 --", true),
               "shm to 1,2,3");
}

#ifdef LOOM_WITH_MPI
const std::string kMpirun = "mpirun --oversubscribe -np 4 ";

TEST(CommHostLinks, MpirunPicksSharedMemoryOnTheHostAndMpiAcross) {
  expect_links(check(kMpirun + "-x LOOM_HOST_MAP=0,0,1,1"), "mpi to 2,3, shm to 1");
  // Interleaved hosts; and uneven ones (no two-level collectives, point to point still by host).
  expect_links(check(kMpirun + "-x LOOM_HOST_MAP=0,1,0,1"), "mpi to 1,3, shm to 2");
  expect_links(check(kMpirun + "-x LOOM_HOST_MAP=0,0,0,1"), "mpi to 3, shm to 1,2");
  // One host: every peer through memory, and the collectives too (the same algorithms).
  const auto one_host = check(kMpirun);
  expect_links(one_host, "shm to 1,2,3");
  EXPECT_NE(one_host.output.find("comm check: backend mpi, 4 ranks, in host memory: "),
            std::string::npos)
      << one_host.output;
}

TEST(CommHostLinks, MpirunFlatTopologyKeepsEveryPeerOnMpi) {
  expect_links(check(kMpirun + "-x LOOM_COMM_TOPOLOGY=flat -x LOOM_HOST_MAP=0,0,1,1"),
               "mpi to 1,2,3");
}

TEST(CommHostLinks, MpirunOnOneHostNeedsTheSegment) {
  // With shared memory made unusable, a job on one host (whose point to point and collectives
  // go through the host's segment) fails to start, naming the setting; flat, it runs on MPI.
  const auto r = check(kMpirun + "-x LOOM_SHM_CONTEXTS=0");
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("LOOM_SHM_CONTEXTS must be >= 1"), std::string::npos) << r.output;
  expect_links(check(kMpirun + "-x LOOM_SHM_CONTEXTS=0 -x LOOM_COMM_TOPOLOGY=flat"),
               "mpi to 1,2,3");
}
#endif

}  // namespace
}  // namespace loom::test
