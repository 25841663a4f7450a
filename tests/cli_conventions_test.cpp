// The conventions users bring from argparse and torchrun: a flag given twice takes its last value
// (in every command); an unknown command is named; --version; one name per idea with the old
// spellings accepted (and a notice); a run directory where a checkpoint is expected means its
// latest; errors after parsing carry no usage hint; a resume with nothing to do says so.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "temp_dir.hpp"
#include "train_cli_util.hpp"

namespace loom {
namespace {
namespace fs = std::filesystem;
using testing::loom_cli;
using testing::Result;

constexpr const char* kText = "the quick brown fox jumps over the lazy dog. ";
constexpr const char* kHelpHint = "Run with --help";

// One trained run (2 steps) shared by the tests that need a checkpoint.
class CliConventions : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::TempDir;
    cfg_ = testing::make_run(*dir_, kText, 20, {{"max_steps", 2}, {"warmup_steps", 1}, {"eval_freq", 0}, {"save_freq", 0}});
    const Result r = loom_cli("train --config " + cfg_);
    ASSERT_EQ(r.rc, 0) << r.out;
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string out() { return *dir_ / "out"; }
  static std::string data() { return *dir_ / "data"; }
  static inline testing::TempDir* dir_ = nullptr;
  static inline std::string cfg_;
};

TEST_F(CliConventions, TrainTakesTheLastOfARepeatedFlag) {
  const std::string o = *dir_ / "twice";
  const Result r = loom_cli("train --config " + cfg_ + " --out_dir " + o + " --max_steps 50 --max_steps 3");
  ASSERT_EQ(r.rc, 0) << r.out;
  std::string latest;
  std::ifstream(o + "/latest") >> latest;
  EXPECT_EQ(latest, "step_000003") << r.out;
}

TEST_F(CliConventions, GenerateEvalPlanAndBenchTakeTheLastOfARepeatedFlag) {
  struct Case {
    std::string twice, once;
  };
  const std::string gen = "generate --checkpoint " + out() + "/latest --temperature 0 ";
  const std::string ev = "eval --checkpoint " + out() + "/latest --data_dir " + data() + " --threads 1 ";
  const Case cases[] = {
      {gen + "--prompt fox --prompt the --max_new_tokens 9 --max_new_tokens 4",
       gen + "--prompt the --max_new_tokens 4"},
      {ev + "--max_windows 50 --max_windows 1", ev + "--max_windows 1"},
  };
  for (const Case& c : cases) {
    const Result twice = loom_cli(c.twice), once = loom_cli(c.once);
    ASSERT_EQ(once.rc, 0) << c.once << "\n" << once.out;
    EXPECT_EQ(twice.rc, 0) << c.twice << "\n" << twice.out;
    EXPECT_EQ(twice.out, once.out) << c.twice;
  }
  // Timed output differs run to run: the line that echoes the value must show the last one.
  const Result plan = loom_cli("plan --config " + cfg_ + " --nproc 8 --nproc 2 --threads 1 --top 1", 300);
  EXPECT_EQ(plan.rc, 0) << plan.out;
  EXPECT_NE(plan.out.find(", 2 ranks x 1 core(s) (1 thread(s) timed)"), std::string::npos) << plan.out;
  const Result bench = loom_cli("bench train --config " + cfg_ +
                                " --batch_size 1 --seq_len 8 --threads 1 --warmup 0 --steps 5 --steps 1");
  EXPECT_EQ(bench.rc, 0) << bench.out;
  EXPECT_NE(bench.out.find("median of 1 steps after 0 warm-up"), std::string::npos) << bench.out;
}

TEST(CliCommands, UnknownCommandIsNamedWithTheNearestAndExits2) {
  Result r = loom_cli("trian --config x");
  EXPECT_EQ(r.rc, 2) << r.out;
  EXPECT_NE(r.out.find("unknown command 'trian' (did you mean 'train'?)"), std::string::npos) << r.out;
  r = loom_cli("bench trian");
  EXPECT_EQ(r.rc, 2) << r.out;
  EXPECT_NE(r.out.find("loom bench: unknown command 'trian' (did you mean 'train'?)"), std::string::npos)
      << r.out;
  r = loom_cli("frobnicate");
  EXPECT_EQ(r.rc, 2) << r.out;
  EXPECT_NE(r.out.find("unknown command 'frobnicate'; loom --help lists the commands"), std::string::npos)
      << r.out;
}

TEST(CliCommands, VersionIsPrinted) {
  const Result r = loom_cli("--version");
  EXPECT_EQ(r.rc, 0) << r.out;
  EXPECT_EQ(r.out.rfind("loom 0.", 0), 0u) << r.out;
}

TEST(CliCommands, ErrorsAfterParsingCarryNoUsageHint) {
  // --device cuda is refused as the flag is read (no GPU, or the trainer not on the GPU yet).
  Result r = loom_cli("train --config x --device cuda");
  EXPECT_EQ(r.rc, 1) << r.out;
  EXPECT_NE(r.out.find("error: --device cuda"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find(kHelpHint), std::string::npos) << r.out;
  r = loom_cli("generate --checkpoint /nonexistent/run --prompt a");
  EXPECT_NE(r.rc, 0) << r.out;
  EXPECT_EQ(r.out.find(kHelpHint), std::string::npos) << r.out;
  // A usage error keeps it.
  r = loom_cli("generate --checkpoint");
  EXPECT_NE(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find(kHelpHint), std::string::npos) << r.out;
}

TEST_F(CliConventions, OldFlagNamesWorkWithADeprecationNotice) {
  const std::string tok = *dir_ / "tok";
  Result r = loom_cli("tokenize --tokenizer byte --input " + cfg_ + " --out " + tok);
  EXPECT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("loom: --out is deprecated; use --out_dir"), std::string::npos) << r.out;
  EXPECT_TRUE(fs::exists(tok + "/meta.json"));
  r = loom_cli("bench train --config " + cfg_ + " --batch 1 --seq 8 --threads 1 --warmup 0 --steps 1");
  EXPECT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("loom: --batch is deprecated; use --batch_size"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("loom: --seq is deprecated; use --seq_len"), std::string::npos) << r.out;
  const std::string gen = "generate --checkpoint " + out() + " --prompt the --temperature 0 ";
  const Result old_name = loom_cli(gen + "--new_tokens 3"), new_name = loom_cli(gen + "--max_new_tokens 3");
  EXPECT_EQ(old_name.rc, 0) << old_name.out;
  EXPECT_EQ(old_name.out, "loom: --new_tokens is deprecated; use --max_new_tokens\n" + new_name.out);
}

TEST_F(CliConventions, RunDirectoryAsCheckpointMeansItsLatest) {
  const std::string gen = " --prompt the --temperature 0 --max_new_tokens 4";
  const Result dir = loom_cli("generate --checkpoint " + out() + gen);
  const Result latest = loom_cli("generate --checkpoint " + out() + "/latest" + gen);
  ASSERT_EQ(latest.rc, 0) << latest.out;
  EXPECT_EQ(dir.rc, 0) << dir.out;
  EXPECT_EQ(dir.out, latest.out);
}

TEST_F(CliConventions, ResumeWithNothingLeftToTrainSaysSoAndFails) {
  const Result r = loom_cli("train --config " + cfg_ + " --resume latest --max_steps 2");
  EXPECT_NE(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("is already at step 2, so there is nothing left to train"), std::string::npos)
      << r.out;
  EXPECT_EQ(r.out.find(kHelpHint), std::string::npos) << r.out;
}

// A re-run or restarted job (--resume auto) whose last checkpoint is already at --max_steps has
// finished: it says so and succeeds, so that re-running a job (or scripts/demo.sh) is harmless.
TEST_F(CliConventions, ResumeAutoWithNothingLeftToTrainSaysSoAndSucceeds) {
  const Result r = loom_cli("train --config " + cfg_ + " --resume auto --max_steps 2");
  EXPECT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("is already at step 2 (--max_steps 2): nothing left to train"), std::string::npos)
      << r.out;
}

TEST_F(CliConventions, StartLineCountsEveryRankUnderTensorParallelism) {
  const std::string o = *dir_ / "tp";
  const Result r = loom_cli("train --config " + cfg_ + " --out_dir " + o + " --nproc 2 --tp 2 --max_steps 2", 120);
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("| 2 rank(s), global batch 4 sequences | dp 1 x tp 2 x pp 1"), std::string::npos)
      << r.out;
}

}  // namespace
}  // namespace loom
