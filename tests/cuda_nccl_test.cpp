// The NCCL backend against the shm backend, and a rank that stops answering making the other fail
// by the timeout. Skipped without a GPU. NCCL refuses two ranks of one communicator on the same
// GPU ("Duplicate GPU detected"), so with one GPU the comparison runs on one rank (init, every
// collective on device memory, split, barrier) and the two-rank cases need two GPUs.
#include "comm_process_util.hpp"
#include "cuda_test_util.hpp"

namespace loom {
namespace {

TEST(CudaNccl, CollectivesMatchShm) {
  LOOM_SKIP_WITHOUT_GPU();
  const int ranks = device::cuda_device_count() >= 2 ? 2 : 1;
  const auto r = test::run_shell(
      test::loom() + " launch --nproc " + std::to_string(ranks) + " -- nccl check --timeout 60",
      240);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("cases match the shm results"), std::string::npos) << r.output;
}

TEST(CudaNccl, StalledRankMakesTheOtherFailByTheTimeout) {
  LOOM_SKIP_WITHOUT_GPU();
  if (device::cuda_device_count() < 2) GTEST_SKIP() << "needs 2 GPUs (one NCCL rank per GPU)";
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
