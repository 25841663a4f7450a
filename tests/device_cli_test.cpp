// --device on the command line and `loom info`: what runs on every machine. Without a GPU,
// --device cuda must fail with a clear "no GPU" message, non-zero exit and nothing written.
#include <gtest/gtest.h>

#include <filesystem>

#include "comm_process_util.hpp"
#include "loom/device/device.hpp"
#include "temp_dir.hpp"

namespace loom {
namespace {

const std::string kConfig = std::string(LOOM_SOURCE_DIR) + "/configs/tiny.json";

TEST(DeviceCli, CudaWithoutGpuSaysNoGpuAndWritesNothing) {
  if (device::cuda_device_count() > 0) GTEST_SKIP() << "this machine has a GPU";
  const testing::TempDir dir;
  const std::string out = dir / "run";
  for (const std::string& cmd :
       {" bench train --config " + kConfig + " --device cuda --batch_size 1 --seq_len 16 --steps 1",
        " train --config " + kConfig + " --device cuda --data_dir " + dir.path() + " --out_dir " +
            out}) {
    const auto r = test::run_shell(test::loom() + cmd, 60);
    EXPECT_NE(r.exit_code, 0) << cmd << "\n" << r.output;
    EXPECT_NE(r.output.find("--device cuda: no GPU: "), std::string::npos) << cmd << "\n"
                                                                           << r.output;
  }
  EXPECT_FALSE(std::filesystem::exists(out));
}

TEST(DeviceCli, GpuBenchmarkWithoutGpuSaysNoGpu) {
  if (device::cuda_device_count() > 0) GTEST_SKIP() << "this machine has a GPU";
  const auto r = test::run_shell(test::loom() + " bench gemm-cuda --n 64 --reps 1", 60);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("bench gemm-cuda: no GPU: "), std::string::npos) << r.output;
}

TEST(DeviceCli, UnknownDeviceIsAnErrorNamingTheFlag) {
  const auto r = test::run_shell(test::loom() + " bench train --config " + kConfig +
                                     " --device tpu --batch_size 1 --seq_len 16 --steps 1",
                                 60);
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("--device: unknown device 'tpu' (expected cpu or cuda)"),
            std::string::npos)
      << r.output;
}

TEST(DeviceCli, InfoReportsGpusOrWhyNone) {
  const auto r = test::run_shell(test::loom() + " info", 60);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  if (device::cuda_device_count() > 0) {
    EXPECT_NE(r.output.find("gpu 0: "), std::string::npos) << r.output;
  } else {
    EXPECT_TRUE(r.output.find("gpus: no GPU (") != std::string::npos ||
                r.output.find("cuda: not built (") != std::string::npos)
        << r.output;
  }
}

}  // namespace
}  // namespace loom
