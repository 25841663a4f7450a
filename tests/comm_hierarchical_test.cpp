// Two-level collectives on simulated hosts (LOOM_HOST_MAP, under `loom launch`): every collective
// and algorithm matches the reference exactly on integer inputs and the flat form within rounding
// on float inputs (`loom comm check` does both when the world has two levels), for 2 x 2 and
// 3 x 2 layouts and odd counts; a killed rank is named with its host; bad settings are refused.
#include <gtest/gtest.h>

#include <unistd.h>

#include "comm_process_util.hpp"

namespace loom::test {
namespace {

constexpr const char* kOddCounts = "--counts 0,1,7,1001,1000003";

ProcessResult check_on_hosts(const std::string& host_map, int nproc, const std::string& algos) {
  return run_shell("LOOM_HOST_MAP=" + host_map + " " + loom() + " launch --nproc " +
                       std::to_string(nproc) + " -- comm check --timeout 60 --algos " + algos +
                       " " + kOddCounts,
                   240);
}

void expect_passed(const ProcessResult& r, int nproc, int hosts) {
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("comm check: backend shm, " + std::to_string(nproc) +
                          " ranks, hierarchical over " + std::to_string(hosts) + " hosts"),
            std::string::npos)
      << r.output;
  EXPECT_EQ(r.output.find("FAILED"), std::string::npos) << r.output;
}

TEST(CommHierarchical, TwoHostsOfTwoMatchTheReferenceAndFlat) {
  expect_passed(check_on_hosts("0,0,1,1", 4, "ring,tree"), 4, 2);
}

TEST(CommHierarchical, ThreeHostsOfTwoMatchTheReferenceAndFlat) {
  expect_passed(check_on_hosts("0,0,1,1,2,2", 6, "ring,naive"), 6, 3);
}

TEST(CommHierarchical, InterleavedHostsMatchTheReferenceAndFlat) {
  // Ranks of one host are not neighbours: blocks of a host are not contiguous.
  expect_passed(check_on_hosts("0,1,2,0,1,2", 6, "ring"), 6, 3);
}

TEST(CommHierarchical, FlatTopologyIgnoresTheHostMap) {
  const auto r = run_shell("LOOM_COMM_TOPOLOGY=flat LOOM_HOST_MAP=0,0,1,1 " + loom() +
                               " launch --nproc 4 -- comm check --timeout 30 --counts 1,7",
                           120);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("comm check: backend shm, 4 ranks: "), std::string::npos) << r.output;
}

TEST(CommHierarchical, BadTopologyOrHostMapIsAClearError) {
  const auto bad = run_shell("LOOM_COMM_TOPOLOGY=2d " + loom() +
                                 " launch --nproc 2 -- comm check --counts 1",
                             60);
  EXPECT_NE(bad.exit_code, 0) << bad.output;
  EXPECT_NE(bad.output.find("LOOM_COMM_TOPOLOGY: unknown topology '2d' (expected auto, flat or "
                            "hierarchical)"),
            std::string::npos)
      << bad.output;
  const auto one_host = run_shell("LOOM_COMM_TOPOLOGY=hierarchical " + loom() +
                                      " launch --nproc 2 -- comm check --counts 1",
                                  60);
  EXPECT_NE(one_host.exit_code, 0) << one_host.output;
  EXPECT_NE(one_host.output.find("LOOM_COMM_TOPOLOGY=hierarchical: the 2 ranks are on 1 host(s)"),
            std::string::npos)
      << one_host.output;
  const auto short_map = run_shell("LOOM_HOST_MAP=0,1 " + loom() +
                                       " launch --nproc 4 -- comm check --counts 1",
                                   60);
  EXPECT_NE(short_map.exit_code, 0) << short_map.output;
  EXPECT_NE(short_map.output.find("LOOM_HOST_MAP='0,1' names 2 ranks, the job has 4"),
            std::string::npos)
      << short_map.output;
}

#ifdef LOOM_WITH_MPI
// Under mpirun the intra-host level is a shared-memory segment per host, the inter-host level MPI.
TEST(CommHierarchical, MpirunTwoHostsOfTwoMatchTheReferenceAndFlat) {
  const auto r = run_shell("mpirun --oversubscribe -np 4 -x LOOM_HOST_MAP=0,0,1,1 " + loom() +
                               " comm check --backend mpi --timeout 60 --algos ring,tree,native " +
                               kOddCounts,
                           240);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("comm check: backend mpi, 4 ranks, hierarchical over 2 hosts"),
            std::string::npos)
      << r.output;
  EXPECT_EQ(r.output.find("FAILED"), std::string::npos) << r.output;
}

TEST(CommHierarchical, MpirunIntraHostLevelIsSharedMemory) {
  // A shared-memory configuration that cannot work breaks the two-level run (whose intra-host
  // level needs a segment) and not the flat one (MPI only, point to point included).
  const std::string env = "mpirun --oversubscribe -np 4 -x LOOM_SHM_CONTEXTS=0 ";
  const std::string check = loom() + " comm check --backend mpi --timeout 20 --counts 1";
  const auto two_level = run_shell(env + "-x LOOM_HOST_MAP=0,0,1,1 " + check, 120);
  EXPECT_NE(two_level.exit_code, 0) << two_level.output;
  EXPECT_NE(two_level.output.find("LOOM_SHM_CONTEXTS must be >= 1"), std::string::npos)
      << two_level.output;
  const auto flat = run_shell(env + "-x LOOM_COMM_TOPOLOGY=flat " + check, 120);
  EXPECT_EQ(flat.exit_code, 0) << flat.output;
}
#endif

// 4 ranks on simulated hosts 0,0,1,1 started by hand (as comm_failure_test does), so the
// survivors' own errors are seen; `victim` is killed mid all-reduce.
ProcessResult kill_one_of_four(int victim) {
  const std::string seg = "/loom-test-hier-" + std::to_string(getpid()) + "-" +
                          std::to_string(victim);
  std::string script;
  for (int r = 0; r < 4; ++r)
    script += "LOOM_HOST_MAP=0,0,1,1 LOOM_SHM_NAME=" + seg + " LOOM_RANK=" + std::to_string(r) +
              " LOOM_WORLD_SIZE=4 " + loom() + " comm check --timeout 3 --fault kill " +
              "--fault-rank " + std::to_string(victim) + " --fault-after-ms 300 & p" +
              std::to_string(r) + "=$!; ";
  script += "rc=0; for p in $p0 $p1 $p2 $p3; do wait $p || rc=$?; done; echo exit=$rc; ";
  script += "rm -f /dev/shm" + seg;
  return run_shell(script, 60);
}

TEST(CommHierarchical, SurvivorsOfAKilledRankOnEitherHostNameItAndItsHost) {
  for (int victim : {1, 2}) {
    const auto r = kill_one_of_four(victim);
    const std::string host = victim < 2 ? "host 0" : "host 1";
    EXPECT_EQ(r.output.find("exit=0"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("allreduce (ring over 2 hosts x 2, 4194304 x f32) in group 'world'"),
              std::string::npos)
        << r.output;
    EXPECT_NE(r.output.find("the peer is rank " + std::to_string(victim) + " on host '" + host +
                            "'"),
              std::string::npos)
        << r.output;
    EXPECT_NE(r.output.find("-host link: rank " + std::to_string(victim) + " (pid"),
              std::string::npos)
        << r.output;
    EXPECT_LT(r.seconds, 20) << r.output;
  }
}

}  // namespace
}  // namespace loom::test
