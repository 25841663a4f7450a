// Tensor parallelism end to end: the real CLI at tp 2, tp 4 and dp 2 x tp 2 (shm via --nproc, Open
// MPI via mpirun) against one rank with the same global batch; checkpoints resharded across
// layouts; bad layouts refused before anything is written. The model has 12 heads of width 4 and
// the byte vocabulary of 257 ids, padded to 258 at tp 2 and 260 at tp 4.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "temp_dir.hpp"
#include "train_cli_util.hpp"

namespace loom {
namespace {
namespace fs = std::filesystem;
using testing::have_mpirun;
using testing::relative_error;
using testing::Result;
using testing::train_losses;

constexpr double kTolerance = 1e-5;
const std::string kText = "the quick brown fox jumps over the lazy dog. ";

class TensorParallelCli : public ::testing::Test {
 protected:
  void SetUp() override {
    config_ = testing::make_run(dir_, kText, 40,
                                {{"seq_len", 16}, {"max_steps", 20}, {"eval_freq", 10},
                                 {"save_freq", 10}, {"sample_freq", 10}});
    nlohmann::json j = nlohmann::json::parse(std::ifstream(config_));
    j["model"]["n_head"] = 12;
    j["model"]["d_model"] = 48;
    std::ofstream(config_) << j.dump(2);
  }
  // `loom train` (mpi_ranks > 0: under mpirun) writing to out_dir `out`.
  Result train(const std::string& out, const std::string& flags, int mpi_ranks = 0) {
    const std::string args = "train --config " + config_ + " --out_dir " + dir_ / out +
                             " " + flags;
    return mpi_ranks > 0 ? testing::mpirun_cli(mpi_ranks, args) : testing::loom_cli(args);
  }
  // The 1-rank run with the whole global batch of 4 sequences, once per test.
  const std::string& reference() {
    if (reference_.empty()) {
      const Result r = train("ref", "--batch_size 4");
      EXPECT_EQ(r.rc, 0) << r.out;
      reference_ = dir_ / "ref";
    }
    return reference_;
  }
  // Per-step losses, evaluation and final parameters (and moments) of run `out` match the
  // reference run's.
  void expect_matches_reference(const std::string& out) {
    const auto ref = train_losses(reference() + "/metrics.jsonl");
    const auto got = train_losses(dir_ / out + "/metrics.jsonl");
    ASSERT_EQ(got.size(), 20u) << out;
    for (const auto& [step, loss] : ref)
      EXPECT_LT(std::abs(got.at(step) - loss) / loss, kTolerance) << out << " step " << step;
    for (const char* file : {"model.safetensors", "optimizer.safetensors"})
      EXPECT_LT(relative_error(dir_ / out + "/step_000020/" + file,
                               reference() + "/step_000020/" + file),
                kTolerance)
          << out << ": " << file << " differs from the 1-rank run";
  }

  testing::TempDir dir_;
  std::string config_, reference_;
};

TEST_F(TensorParallelCli, ShmTp2Tp4AndDp2xTp2MatchOneRank) {
  for (const auto& [out, flags] : {std::pair<std::string, std::string>{"tp2", "--nproc 2 --tp 2 --batch_size 4"},
                                   {"tp4", "--nproc 4 --tp 4 --batch_size 4"},
                                   {"dp2tp2", "--nproc 4 --tp 2 --batch_size 2"},
                                   {"dp2tp2zero", "--nproc 4 --tp 2 --batch_size 2 --zero 1"}}) {
    const Result r = train(out, flags);
    ASSERT_EQ(r.rc, 0) << r.out;
    expect_matches_reference(out);
    // Evaluation and generation run under tp (on the tp ranks of replica 0 together).
    EXPECT_NE(r.out.find("[rank 0] eval step 20"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("[rank 0] sample: the "), std::string::npos) << r.out;
  }
}

TEST_F(TensorParallelCli, MpirunTp2Tp4AndDp2xTp2MatchOneRank) {
  if (!have_mpirun()) GTEST_SKIP() << "mpirun not found";
  for (const auto& [out, n, flags] : {std::tuple<std::string, int, std::string>{"tp2", 2, "--tp 2 --batch_size 4"},
                                      {"tp4", 4, "--tp 4 --batch_size 4"},
                                      {"dp2tp2", 4, "--tp 2 --batch_size 2"}}) {
    const Result r = train(out, flags, n);
    ASSERT_EQ(r.rc, 0) << r.out;
    expect_matches_reference(out);
  }
}

// Saved at dp 2 x tp 2 (whole tensors), resumed at 1 rank and at tp 4: the next steps' losses
// are the uninterrupted run's.
TEST_F(TensorParallelCli, Dp2xTp2CheckpointResumesAtOneRankAndAtTp4) {
  ASSERT_EQ(train("dp2tp2", "--nproc 4 --tp 2 --batch_size 2").rc, 0);
  const auto full = train_losses(dir_ / "dp2tp2/metrics.jsonl");
  const std::string ckpt = dir_ / "dp2tp2/step_000010";
  for (const auto& [out, flags] : {std::pair<std::string, std::string>{"one", "--batch_size 4"},
                                   {"tp4", "--nproc 4 --tp 4 --batch_size 4"}}) {
    const Result r = train(out, "--resume " + ckpt + " " + flags);
    ASSERT_EQ(r.rc, 0) << r.out;
    const auto resumed = train_losses(dir_ / out + "/metrics.jsonl");
    ASSERT_EQ(resumed.size(), 10u) << out;
    for (const auto& [step, loss] : resumed)
      EXPECT_LT(std::abs(loss - full.at(step)) / loss, kTolerance) << out << " step " << step;
  }
}

// Refused before any work, naming the flag, the value and what is valid; nothing is written.
TEST_F(TensorParallelCli, BadLayoutsAndAnotherModelsCheckpointAreRefused) {
  struct Case {
    std::string flags, message;
    int mpi_ranks;
  };
  std::vector<Case> cases = {
      {"--nproc 4 --tp 3", "--tp 3 must divide the world size 4 (valid: 1, 2, 4)", 0},
      {"--tp 5", "--tp 5: tensor parallelism splits the attention heads, so it must "
                                          "divide n_head = 12 (valid: 1, 2, 3, 4, 6, 12)", 0},
      {"--pp 2 --nproc 2", "pp must be 1", 0}};
  if (have_mpirun()) cases.push_back({"--tp 3", "--tp 3 must divide the world size 4", 4});
  for (const auto& c : cases) {
    const Result r = train("bad", c.flags, c.mpi_ranks);
    EXPECT_NE(r.rc, 0) << c.flags;
    EXPECT_NE(r.out.find(c.message), std::string::npos) << c.flags << "\n" << r.out;
    EXPECT_FALSE(fs::exists(dir_ / "bad")) << c.flags << ": wrote its out_dir";
  }
  // A checkpoint of a narrower model, resumed at tp 2.
  ASSERT_EQ(train("narrow", "--d_model 24 --max_steps 2 --warmup_steps 1").rc, 0);
  const Result r = train("bad", "--nproc 2 --tp 2 --resume " + dir_ / "narrow/latest");
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.out.find("the checkpoint's model config differs from this run's: d_model: checkpoint 24, this run 48"),
            std::string::npos)
      << r.out;
  EXPECT_FALSE(fs::exists(dir_ / "bad"));
}

}  // namespace
}  // namespace loom
