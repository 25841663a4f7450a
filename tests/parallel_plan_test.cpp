// The ParallelPlan (loom/config/parallel_plan): what it resolves from a config and a world size
// (pp 1 is the one-stage 1F1B with one micro-batch; the expert and sequence axes are 1), and that
// `loom info`, `loom memory` and `loom train` print the same plan for the same flags.
#include "loom/config/parallel_plan.hpp"

#include <gtest/gtest.h>

#include <sstream>
#include <string>

#include "error_of.hpp"
#include "temp_dir.hpp"
#include "train_cli_util.hpp"

namespace loom {
namespace {

RunConfig four_layers() {
  RunConfig c;
  c.model.n_layer = 4;
  c.model.n_head = 4;
  return c;
}

TEST(ParallelPlan, OneStageIsOneFOneBWithOneMicroBatch) {
  RunConfig c = four_layers();
  c.train.schedule = pipeline::ScheduleKind::ZeroBubbleH1;  // meaningless with one stage
  c.train.micro_batches = 4;
  c.train.tp = 2;
  const ParallelPlan p = make_parallel_plan(c, 8);
  EXPECT_EQ(p.mesh.pp, 1);
  EXPECT_EQ(p.mesh.dp, 4);
  EXPECT_EQ(p.mesh.tp, 2);
  EXPECT_EQ(p.ep, 1);
  EXPECT_EQ(p.sp, 1);
  EXPECT_EQ(p.schedule, pipeline::ScheduleKind::OneFOneB);
  EXPECT_EQ(p.micro_batches, 1);
  EXPECT_EQ(p.stage_blocks, std::vector<int>{4});
  EXPECT_NE(p.describe().find("8 ranks = pp 1 x dp 4 x tp 2 x ep 1 x sp 1 | one stage | schedule "
                              "1f1b, 1 micro-batch per batch"),
            std::string::npos)
      << p.describe();
}

TEST(ParallelPlan, PipelineTakesTheConfigsScheduleMicroBatchesAndPartition) {
  RunConfig c = four_layers();
  c.train.pp = 2;
  c.train.schedule = pipeline::ScheduleKind::Interleaved;
  c.train.virtual_stages = 2;
  c.train.zero = 1;
  const ParallelPlan p = make_parallel_plan(c, 4);
  EXPECT_EQ(p.mesh.pp, 2);
  EXPECT_EQ(p.mesh.dp, 2);
  EXPECT_EQ(p.micro_batches, 2);  // 0 in the config: pp
  EXPECT_EQ(p.virtual_stages, 2);
  EXPECT_TRUE(p.stage_blocks.empty());  // balanced at start-up
  EXPECT_NE(p.describe().find("2 stages balanced by costs timed at start-up | schedule interleaved, "
                              "2 micro-batches per batch, 2 chunks per rank"),
            std::string::npos)
      << p.describe();
  EXPECT_NE(p.describe().find("ZeRO-1"), std::string::npos) << p.describe();
  c.train.schedule = pipeline::ScheduleKind::OneFOneB;
  c.train.virtual_stages = 1;
  c.train.partition = "1,3";
  EXPECT_EQ(make_parallel_plan(c, 2).stage_blocks, (std::vector<int>{1, 3}));
}

TEST(ParallelPlan, AWorldTheMeshDoesNotFitNamesTheFlag) {
  RunConfig c = four_layers();
  c.train.tp = 2;
  EXPECT_NE(test::error_of([&] { make_parallel_plan(c, 3); }).find("--tp"), std::string::npos);
}

// The "plan: " line of a command's output.
std::string plan_line(const std::string& out) {
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);)
    if (line.rfind("plan: ", 0) == 0) return line;
  return "(no plan line)";
}

TEST(ParallelPlan, InfoMemoryAndTrainPrintTheSamePlanForTheSameFlags) {
  testing::TempDir dir;
  const std::string cfg = testing::make_run(dir, "the quick brown fox jumps over the lazy dog. ", 40,
                                            {{"max_steps", 1}, {"warmup_steps", 0}, {"eval_freq", 0}, {"save_freq", 0}});
  const std::string flags = " --nproc 2 --tp 2";
  const auto info = testing::loom_cli("info" + flags);
  ASSERT_EQ(info.rc, 0) << info.out;
  const auto memory = testing::loom_cli("memory --config " + cfg + flags +
                                        " --batch_size 2 --seq_len 16 --steps 1 --threads 1");
  ASSERT_EQ(memory.rc, 0) << memory.out;
  const auto train = testing::loom_cli("train --config " + cfg + flags);
  ASSERT_EQ(train.rc, 0) << train.out;
  const std::string plan = plan_line(info.out);
  EXPECT_NE(plan.find("2 ranks = pp 1 x dp 1 x tp 2"), std::string::npos) << info.out;
  EXPECT_EQ(plan_line(memory.out), plan) << memory.out;
  EXPECT_EQ(plan_line(train.out), plan) << train.out;
}

}  // namespace
}  // namespace loom
