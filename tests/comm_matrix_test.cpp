// Every collective x algorithm x world size {1..5} x odd sizes, element-wise against a reference
// (`loom comm check`, one process launch per backend and world size), on shm and mpi.
#include <gtest/gtest.h>

#include "comm_process_util.hpp"

namespace loom::test {
namespace {

constexpr const char* kCounts = "--counts 0,1,2,3,7,1001,65537,300007";

class CommMatrix : public ::testing::TestWithParam<int> {};

TEST_P(CommMatrix, ShmEveryCollectiveAndAlgorithmMatchesTheReference) {
  const int n = GetParam();
  const auto r = run_shell(loom() + " launch --nproc " + std::to_string(n) +
                               " -- comm check --timeout 30 " + kCounts,
                           120);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("comm check: backend shm, " + std::to_string(n) + " ranks"),
            std::string::npos)
      << r.output;
  EXPECT_EQ(r.output.find("FAILED"), std::string::npos) << r.output;
}

#ifdef LOOM_WITH_MPI
TEST_P(CommMatrix, MpiEveryCollectiveAndAlgorithmIncludingNativeMatchesTheReference) {
  const int n = GetParam();
  const auto r = run_shell("mpirun --oversubscribe -np " + std::to_string(n) + " " + loom() +
                               " comm check --backend mpi --timeout 30 " + kCounts,
                           120);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("comm check: backend mpi, " + std::to_string(n) + " ranks"),
            std::string::npos)
      << r.output;
}
#endif

INSTANTIATE_TEST_SUITE_P(CommWorldSizes, CommMatrix, ::testing::Values(1, 2, 3, 4, 5));

}  // namespace
}  // namespace loom::test
