// `loom plan` and `loom bench pipeline` end to end at toy sizes: they print what they promise
// and refuse bad flags with a message naming them.
#include <gtest/gtest.h>

#include "comm_process_util.hpp"

namespace loom::test {
namespace {

const std::string kTiny = std::string(LOOM_SOURCE_DIR) + "/configs/tiny.json";

TEST(PipelineCli, PlanRanksLayoutsAndMarksThoseOverTheMemoryLimit) {
  const auto r = run_shell(loom() + " plan --config " + kTiny + " --nproc 4 --mem_gb 0.1 --top 100", 120);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("calibrated per sequence: block F"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("dp 4 x tp 1 x pp 1"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("dp 1 x tp 2 x pp 2, zb1p, m 32"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("over --mem_gb 0.10"), std::string::npos) << r.output;
}

TEST(PipelineCli, PlanRefusesBadInput) {
  auto r = run_shell(loom() + " plan --config " + kTiny + " --nproc 0", 60);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("--nproc must be >= 1"), std::string::npos) << r.output;
  r = run_shell(loom() + " plan --config /nonexistent.json --nproc 2", 60);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("/nonexistent.json"), std::string::npos) << r.output;
}

TEST(PipelineCli, BenchPipelinePrintsEveryRow) {
  const auto r = run_shell(loom() + " bench pipeline --pp 2 --micro-batches 2,4 --schedule "
                                    "1f1b,zb1p,interleaved --width 32 --rows 8 --layers 4 --steps 1 "
                                    "--warmup 0",
                           120);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* row : {"  2    2 1f1b", "  2    2 zb1p", "  2    4 1f1b", "  2    4 zb1p",
                          "  2    4 interleaved v2"})
    EXPECT_NE(r.output.find(row), std::string::npos) << row << "\n" << r.output;
}

TEST(PipelineCli, BenchPipelineRunsGptStages) {
  const auto r = run_shell(loom() + " bench pipeline --config " + kTiny + " --pp 2 --micro_batches 2 "
                                    "--schedule gpipe,zb1p --batch_size 2 --seq_len 16 --steps 1 --warmup 0",
                           120);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("bench pipeline: GPT "), std::string::npos) << r.output;
  for (const char* row : {"  2    2 gpipe", "  2    2 zb1p"})
    EXPECT_NE(r.output.find(row), std::string::npos) << row << "\n" << r.output;
}

TEST(PipelineCli, BenchPipelineRefusesBadInput) {
  auto r = run_shell(loom() + " bench pipeline --micro_batches 3 --rows 8", 60);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("--micro_batches 3 must divide --rows 8"), std::string::npos) << r.output;
  r = run_shell(loom() + " bench pipeline --schedule 2f2b", 60);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("unknown schedule '2f2b'"), std::string::npos) << r.output;
  r = run_shell(loom() + " bench pipeline --pp 4 --layers 2 --rows 8 --width 8 --micro_batches 2", 60);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("4 stages for 2 layers"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace loom::test
