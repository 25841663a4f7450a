// Megatron sequence parallelism end to end (the real CLI, shm ranks): --sequence_parallel at tp 2
// and tp 4 (oversubscribed), with dropout, with recompute selective and full and under pp 2 x
// tp 2 gives the run without it at the same layout (losses and final parameters and moments,
// rel. 1e-5); an SP checkpoint resumes at 1 rank with the same losses; bad combinations are
// refused before anything is written. The model has 12 heads of width 4 and seq_len 16.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "layout_equivalence.hpp"

namespace loom {
namespace {
namespace fs = std::filesystem;
using testing::Result;
using testing::train_losses;

class SequenceParallelCli : public testing::LayoutEquivalenceTest {
 protected:
  void SetUp() override { make_config(2); }

  // Runs `flags` as `out` without and `out`-sp with --sequence_parallel; the two match.
  void expect_sp_matches(const std::string& out, const std::string& flags) {
    const Result plain = train(out, flags);
    ASSERT_EQ(plain.rc, 0) << plain.out;
    const Result sp = train(out + "-sp", flags + " --sequence_parallel true");
    ASSERT_EQ(sp.rc, 0) << sp.out;
    EXPECT_NE(sp.out.find("sequence parallel over the tp ranks"), std::string::npos) << sp.out;
    expect_runs_match(out + "-sp", out);
  }
  // Per-step losses and the final parameters and moments of run `a` match run `b`'s.
  void expect_runs_match(const std::string& a, const std::string& b) {
    const auto want = train_losses(dir_ / b + "/metrics.jsonl");
    const auto got = train_losses(dir_ / a + "/metrics.jsonl");
    ASSERT_EQ(got.size(), 20u) << a;
    ASSERT_EQ(want.size(), 20u) << b;
    for (const auto& [step, loss] : want)
      EXPECT_LT(std::abs(got.at(step) - loss) / loss, kTolerance) << a << " step " << step;
    for (const char* file : {"model.safetensors", "optimizer.safetensors"})
      EXPECT_LT(testing::relative_error(dir_ / a + "/step_000020/" + file,
                                        dir_ / b + "/step_000020/" + file),
                kTolerance)
          << a << ": " << file << " differs from " << b;
  }
};

TEST_F(SequenceParallelCli, Tp2AndTp4MatchTpWithoutIt) {
  expect_sp_matches("tp2", "--nproc 2 --tp 2 --batch_size 4");
  expect_sp_matches("tp4", "--nproc 4 --tp 4 --batch_size 4");
}

// Dropout masks are the same as one rank's (each rank draws its rows' slices of them); the
// recomputed blocks and a pipeline of two stages (whole activations between the stages) too.
TEST_F(SequenceParallelCli, DropoutRecomputeAndPipelineMatchTpWithoutIt) {
  const std::string drop = " --dropout 0.1 --batch_size 4";
  expect_sp_matches("drop-tp2", "--nproc 2 --tp 2" + drop);
  for (const char* r : {"selective", "full"}) {
    const std::string out = std::string("drop-tp2-") + r;
    const Result sp = train(out, "--nproc 2 --tp 2 --sequence_parallel true --recompute " +
                                     std::string(r) + drop);
    ASSERT_EQ(sp.rc, 0) << sp.out;
    expect_runs_match(out, "drop-tp2");
  }
  expect_sp_matches("drop-pp2tp2", "--nproc 4 --pp 2 --tp 2 --schedule 1f1b" + drop);
  // The runs above did drop: without dropout the losses differ.
  const auto plain = train_losses(reference() + "/metrics.jsonl");
  const auto dropped = train_losses(dir_ / "drop-tp2-sp/metrics.jsonl");
  EXPECT_GT(std::abs(plain.at(20) - dropped.at(20)) / dropped.at(20), 1e-3);
}

// Checkpoints hold whole tensors: a tp 2 SP run's step-10 checkpoint continues at 1 rank with the
// uninterrupted run's losses.
TEST_F(SequenceParallelCli, CheckpointResumesAtOneRank) {
  const Result r = train("tp2sp", "--nproc 2 --tp 2 --sequence_parallel true --batch_size 4");
  ASSERT_EQ(r.rc, 0) << r.out;
  expect_resumes_like_the_run("tp2sp", {{"one", "--batch_size 4"}});
}

// Refused before any work, naming the flag, the value and what is valid; nothing is written.
TEST_F(SequenceParallelCli, BadCombinationsAreRefused) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"--sequence_parallel true",
       "--sequence_parallel needs --tp > 1 (it splits the sequence over the tensor-parallel "
       "ranks), got --tp 1"},
      {"--nproc 2 --tp 2 --sequence_parallel true --seq_len 15",
       "--sequence_parallel: seq_len 15 must be divisible by --tp 2"},
      {"--nproc 4 --tp 4 --sequence_parallel true --seq_len 14",
       "--sequence_parallel: seq_len 14 must be divisible by --tp 4"},
      {"--nproc 4 --pp 2 --tp 2 --schedule zb1p --sequence_parallel true",
       "--sequence_parallel cannot run with schedule zb1p"},
      {"--nproc 2 --tp 2 --parallel auto --sequence_parallel true",
       "--sequence_parallel needs --parallel manual"}};
  for (const auto& [flags, message] : cases) {
    const Result r = train("bad", flags);
    EXPECT_NE(r.rc, 0) << flags;
    EXPECT_NE(r.out.find(message), std::string::npos) << flags << "\n" << r.out;
    EXPECT_FALSE(fs::exists(dir_ / "bad")) << flags << ": wrote its out_dir";
  }
}

}  // namespace
}  // namespace loom
