// `loom info --host-map`: the hosts of a job whose launcher dealt ranks round-robin (mpirun
// --map-by node), the mesh reordered so tp groups stay inside hosts, and bad maps refused.
#include <gtest/gtest.h>

#include "train_cli_util.hpp"

namespace loom {
namespace {
using testing::loom_cli;

TEST(InfoHosts, InterleavedHostsKeepTpInside) {
  const auto r = loom_cli("info --nproc 16 --tp 8 --pp 2 --host-map 0,1,0,1,0,1,0,1,0,1,0,1,0,1,0,1");
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("hosts: 2: host 0 ranks 0,2,4,6,8,10,12,14, host 1 ranks 1,3,5,7,9,11,13,15\n"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("mesh order: by host"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("tp groups: 2 of 2 inside a host\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("pp groups: 0 of 8 inside a host\n"), std::string::npos) << r.out;
  // Host 0's ranks form the first stage's tp group.
  EXPECT_NE(r.out.find("rank 2: pp 0 dp 0 tp 1 | tp [0,2,4,6,8,10,12,14] dp [2] pp [2,3]"),
            std::string::npos)
      << r.out;
  // The same hosts given as consecutive blocks need no reordering.
  const auto blocks = loom_cli("info --nproc 16 --tp 8 --pp 2 --ranks-per-host 8");
  ASSERT_EQ(blocks.rc, 0) << blocks.out;
  EXPECT_NE(blocks.out.find("hosts: 2: host 0 ranks 0-7, host 1 ranks 8-15\n"), std::string::npos)
      << blocks.out;
  EXPECT_EQ(blocks.out.find("mesh order"), std::string::npos) << blocks.out;
  EXPECT_NE(blocks.out.find("tp groups: 2 of 2 inside a host\n"), std::string::npos) << blocks.out;
}

TEST(InfoHosts, BadHostMapsAreRefusedNamingTheFlag) {
  const auto short_map = loom_cli("info --nproc 4 --host-map 0,1");
  EXPECT_NE(short_map.rc, 0);
  EXPECT_NE(short_map.out.find("--host-map='0,1' names 2 ranks, the job has 4"), std::string::npos)
      << short_map.out;
  const auto both = loom_cli("info --nproc 4 --host-map 0,0,1,1 --ranks-per-host 2");
  EXPECT_NE(both.rc, 0);
  EXPECT_NE(both.out.find("--host-map and --ranks-per-host both say where ranks run; give one"),
            std::string::npos)
      << both.out;
  const auto uneven = loom_cli("info --nproc 16 --ranks-per-host 3");
  EXPECT_NE(uneven.rc, 0);
  EXPECT_NE(uneven.out.find("--ranks-per-host 3 must divide the world size 16"), std::string::npos)
      << uneven.out;
}

}  // namespace
}  // namespace loom
