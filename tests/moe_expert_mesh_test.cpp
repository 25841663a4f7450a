// The expert-parallel axis of the process mesh (issue 19): ep consecutive data-parallel ranks of
// one dp group split the experts, and an ep that does not divide dp is refused naming --ep. The
// groups carry real training in moe_train_cli_test (ep 2 x dp 2 equals one rank only if they are
// the right ranks).
#include <gtest/gtest.h>

#include <string>

#include "error_of.hpp"
#include "loom/parallel/mesh.hpp"

namespace loom::parallel {
namespace {

TEST(ExpertMesh, EpGroupsAreConsecutiveDataParallelRanksOfOneDpGroup) {
  // 8 ranks = pp 1 x dp 4 x tp 2, ep 2: dp group [0,2,4,6] splits into ep groups [0,2] and [4,6].
  const MeshShape s = mesh_shape(8, 2, 1, 2);
  EXPECT_EQ(s.dp, 4);
  EXPECT_EQ(s.ep, 2);
  EXPECT_EQ(s.world(), 8);  // ep is inside dp, not a world dimension
  const std::string d = describe_mesh(s);
  EXPECT_NE(d.find("rank 0: pp 0 dp 0 tp 0 | tp [0,1] dp [0,2,4,6] pp [0] embedding [0] ep [0,2]\n"),
            std::string::npos)
      << d;
  EXPECT_NE(d.find("rank 5: pp 0 dp 2 tp 1 | tp [4,5] dp [1,3,5,7] pp [5] embedding [5] ep [5,7]\n"),
            std::string::npos)
      << d;
  // ep 1 adds nothing to the description (dense layouts print as before).
  EXPECT_EQ(describe_mesh(mesh_shape(8, 2, 1)).find(" ep "), std::string::npos);
}

TEST(ExpertMesh, AnEpThatDoesNotDivideDpIsRefusedNamingTheFlag) {
  EXPECT_EQ(test::error_of([] { mesh_shape(8, 2, 1, 3); }),
            "--ep 3 must divide the data-parallel size 4 (world 8 / --tp 2 / --pp 1; valid: 1, 2, "
            "4): the expert-parallel ranks are data-parallel ranks");
  EXPECT_NE(test::error_of([] { mesh_shape(4, 1, 1, 0); }).find("--ep 0 must divide"),
            std::string::npos);
  EXPECT_EQ(test::error_of([] { mesh_shape(8, 2, 1, 4); }), "");
}

}  // namespace
}  // namespace loom::parallel
