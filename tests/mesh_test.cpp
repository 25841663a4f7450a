// The process mesh: coordinates (tp fastest, then dp, then pp), the groups each rank belongs to,
// and the refusal of shapes that do not divide the world. The groups themselves are exercised
// on many ranks by the tensor-parallel CLI tests (dp x tp training equals one rank only if the
// tp and dp groups are the right ranks).
#include "loom/parallel/mesh.hpp"

#include <gtest/gtest.h>

#include "loom/core/check.hpp"

namespace loom::parallel {
namespace {

TEST(Mesh, TpVariesFastestThenDpThenPp) {
  const MeshShape s = mesh_shape(8, 2, 2);
  EXPECT_EQ(s.pp, 2);
  EXPECT_EQ(s.dp, 2);
  EXPECT_EQ(s.tp, 2);
  for (int r = 0; r < 8; ++r) EXPECT_EQ(mesh_rank(s, mesh_coord(s, r)), r);
  const MeshCoord c = mesh_coord(s, 5);  // 5 = (pp 1 * dp 2 + dp 0) * tp 2 + tp 1
  EXPECT_EQ(c.pp, 1);
  EXPECT_EQ(c.dp, 0);
  EXPECT_EQ(c.tp, 1);
}

TEST(Mesh, DescriptionListsEveryRanksGroups) {
  const std::string d = describe_mesh(mesh_shape(8, 2, 2));
  EXPECT_NE(d.find("mesh: world 8 = pp 2 x dp 2 x tp 2"), std::string::npos) << d;
  EXPECT_NE(d.find("rank 0: pp 0 dp 0 tp 0 | tp [0,1] dp [0,2] pp [0,4] embedding [0,4]"),
            std::string::npos)
      << d;
  EXPECT_NE(d.find("rank 7: pp 1 dp 1 tp 1 | tp [6,7] dp [5,7] pp [3,7] embedding [3,7]"),
            std::string::npos)
      << d;
  // With 3 stages the middle one holds no embedding.
  const std::string three = describe_mesh(mesh_shape(3, 1, 3));
  EXPECT_NE(three.find("rank 1: pp 1 dp 0 tp 0 | tp [1] dp [1] pp [0,1,2] embedding -"),
            std::string::npos)
      << three;
  EXPECT_NE(three.find("rank 2: pp 2 dp 0 tp 0 | tp [2] dp [2] pp [0,1,2] embedding [0,2]"),
            std::string::npos)
      << three;
}

TEST(Mesh, PlacementSaysWhichGroupsStayInsideAHost) {
  // 16 ranks, tp 8 x pp 2 on 2 hosts of 8: each tp group is one host; dp (size 1) trivially
  // inside; each pp group joins a rank of both hosts.
  const std::string two = describe_placement(mesh_shape(16, 8, 2), comm::consecutive_hosts(16, 8));
  EXPECT_NE(two.find("hosts: 2: host 0 ranks 0-7, host 1 ranks 8-15\n"), std::string::npos) << two;
  EXPECT_EQ(two.find("mesh order"), std::string::npos) << two;  // nothing to reorder
  EXPECT_NE(two.find("tp groups: 2 of 2 inside a host\n"), std::string::npos) << two;
  EXPECT_NE(two.find("dp groups: 16 of 16 inside a host\n"), std::string::npos) << two;
  EXPECT_NE(two.find("pp groups: 0 of 8 inside a host\n"), std::string::npos) << two;
  // Hosts of 4 split every tp group of 8; dp 2 x tp 2 on hosts of 2: tp inside, dp across.
  EXPECT_NE(describe_placement(mesh_shape(16, 8, 2), comm::consecutive_hosts(16, 4))
                .find("tp groups: 0 of 2 inside a host"),
            std::string::npos);
  const std::string dp_tp = describe_placement(mesh_shape(4, 2, 1), comm::consecutive_hosts(4, 2));
  EXPECT_NE(dp_tp.find("tp groups: 2 of 2 inside a host"), std::string::npos) << dp_tp;
  EXPECT_NE(dp_tp.find("dp groups: 0 of 2 inside a host"), std::string::npos) << dp_tp;
}

TEST(Mesh, InterleavedHostsAreReorderedSoTpGroupsStayInside) {
  // mpirun --map-by node over 2 hosts: even ranks on host 0, odd on host 1.
  const comm::Hosts round_robin = comm::parse_host_map("0,1,0,1,0,1,0,1", 8);
  const std::vector<int> positions = mesh_positions(round_robin);
  EXPECT_EQ(positions, (std::vector<int>{0, 4, 1, 5, 2, 6, 3, 7}));
  const MeshShape s = mesh_shape(8, 4, 1);  // tp 4 x dp 2
  const std::string placement = describe_placement(s, round_robin);
  EXPECT_NE(placement.find("hosts: 2: host 0 ranks 0,2,4,6, host 1 ranks 1,3,5,7\n"),
            std::string::npos)
      << placement;
  EXPECT_NE(placement.find("mesh order: by host"), std::string::npos) << placement;
  EXPECT_NE(placement.find("tp groups: 2 of 2 inside a host\n"), std::string::npos) << placement;
  EXPECT_NE(placement.find("dp groups: 0 of 4 inside a host\n"), std::string::npos) << placement;
  // The groups in world ranks: rank 1 is host 1's first rank, tp 0 of the second replica.
  const std::string mesh = describe_mesh(s, positions);
  EXPECT_NE(mesh.find("rank 1: pp 0 dp 1 tp 0 | tp [1,3,5,7] dp [0,1] pp [1]"), std::string::npos)
      << mesh;
  // Hosts already consecutive, one host, a job on one machine: the identity.
  EXPECT_EQ(mesh_positions(comm::consecutive_hosts(8, 4)), (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7}));
  EXPECT_EQ(mesh_positions(comm::single_host(3, "x")), (std::vector<int>{0, 1, 2}));
}

TEST(Mesh, ShapesThatDoNotDivideTheWorldAreRefusedNamingTheFlag) {
  auto message = [](int world, int tp, int pp) {
    try {
      mesh_shape(world, tp, pp);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(message(4, 3, 1), "--tp 3 must divide the world size 4 (valid: 1, 2, 4)");
  EXPECT_EQ(message(8, 2, 3), "--pp 3 must divide the world size 8 / --tp 2 = 4 (valid: 1, 2, 4)");
  EXPECT_EQ(message(4, 0, 1), "--tp 0 must divide the world size 4 (valid: 1, 2, 4)");
}

TEST(Mesh, OneProcessHasSingleRankGroups) {
  auto world = comm::communicator_from_env();
  Mesh mesh(*world, mesh_shape(1, 1, 1));
  EXPECT_EQ(mesh.tp().size(), 1);
  EXPECT_EQ(mesh.dp().size(), 1);
  EXPECT_EQ(mesh.pp().size(), 1);
  EXPECT_EQ(mesh.embedding().size(), 1);
  EXPECT_THROW(Mesh(*world, mesh_shape(2, 2, 1)), Error);  // does not match the world of 1
}

}  // namespace
}  // namespace loom::parallel
