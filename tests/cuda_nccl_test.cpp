// The NCCL backend against the shm backend on 2 ranks (which may share one GPU), and a rank that
// stops answering making the other fail by the timeout. Skipped without a GPU.
#include "comm_process_util.hpp"
#include "cuda_test_util.hpp"

namespace loom {
namespace {

TEST(CudaNccl, CollectivesMatchShmOnTwoRanks) {
  LOOM_SKIP_WITHOUT_GPU();
  const auto r =
      test::run_shell(test::loom() + " launch --nproc 2 -- nccl check --timeout 60", 240);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("cases match the shm results"), std::string::npos) << r.output;
}

TEST(CudaNccl, StalledRankMakesTheOtherFailByTheTimeout) {
  LOOM_SKIP_WITHOUT_GPU();
  const auto r = test::run_shell(
      test::loom() + " launch --nproc 2 -- nccl check --timeout 5 --stall-rank 1", 120);
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("timed out"), std::string::npos) << r.output;
  EXPECT_LT(r.seconds, 60) << r.output;
}

TEST(NcclCli, WithoutGpuSaysNoGpu) {
  if (device::cuda_device_count() > 0) GTEST_SKIP() << "this machine has a GPU";
  const auto r = test::run_shell(test::loom() + " nccl check", 60);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("nccl check: no GPU: "), std::string::npos) << r.output;
}

}  // namespace
}  // namespace loom
