// Training on 2 simulated hosts x 2 ranks (LOOM_HOST_MAP=0,0,1,1 under `loom launch`) with
// two-level collectives: dp 4 (the data-parallel group spans both hosts, 2 ranks each) and
// dp 2 x tp 2 (tp groups inside the hosts) give the losses and parameters of 1 rank, also when
// the hosts' ranks are interleaved (the mesh reorders them).
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "layout_equivalence.hpp"

namespace loom {
namespace {
using testing::Result;

// Sets an environment variable for the ranks this test starts, and removes it afterwards.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) { setenv(name, value, 1); }
  ~ScopedEnv() { unsetenv(name_); }

 private:
  const char* name_;
};

class HierarchicalTrain : public testing::LayoutEquivalenceTest {
 protected:
  void SetUp() override { make_config(2); }
};

TEST_F(HierarchicalTrain, TwoHostsOfTwoRanksMatchOneRank) {
  reference();  // the 1-rank run, without the host map
  const ScopedEnv hosts("LOOM_HOST_MAP", "0,0,1,1");
  const ScopedEnv topology("LOOM_COMM_TOPOLOGY", "hierarchical");
  for (const auto& [out, flags] : {std::pair<std::string, std::string>{"dp4", "--nproc 4 --batch_size 1"},
                                   {"dp2tp2", "--nproc 4 --tp 2 --batch_size 2"}}) {
    const Result r = train(out, flags);
    ASSERT_EQ(r.rc, 0) << r.out;
    EXPECT_NE(r.out.find("comm: 4 ranks on 2 hosts, hierarchical"), std::string::npos) << r.out;
    expect_matches_reference(out);
  }
}

TEST_F(HierarchicalTrain, InterleavedHostsKeepTpInsideAndMatchOneRank) {
  // As `mpirun --map-by node` numbers them: ranks 0, 2 on host 0, ranks 1, 3 on host 1. The mesh
  // places each host's ranks consecutively, so the tp groups are {0, 2} and {1, 3}.
  reference();
  const ScopedEnv hosts("LOOM_HOST_MAP", "0,1,0,1");
  const ScopedEnv topology("LOOM_COMM_TOPOLOGY", "hierarchical");
  const Result r = train("interleaved", "--nproc 4 --tp 2 --batch_size 2");
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("comm: 4 ranks on 2 hosts, hierarchical"), std::string::npos) << r.out;
  expect_matches_reference("interleaved");
}

}  // namespace
}  // namespace loom
