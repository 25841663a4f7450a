// Tensor parallelism end to end: the real CLI at tp 2, tp 4 and dp 2 x tp 2 (shm via --nproc, Open
// MPI via mpirun) against one rank with the same global batch; checkpoints resharded across
// layouts; bad layouts refused before anything is written. The model has 12 heads of width 4 and
// the byte vocabulary of 257 ids, padded to 258 at tp 2 and 260 at tp 4.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "layout_equivalence.hpp"

namespace loom {
namespace {
namespace fs = std::filesystem;
using testing::have_mpirun;
using testing::Result;
using testing::train_losses;

class TensorParallelCli : public testing::LayoutEquivalenceTest {
 protected:
  void SetUp() override { make_config(2); }
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
    EXPECT_NE(r.out.find("eval step 20"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("sample: the "), std::string::npos) << r.out;
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
  expect_resumes_like_the_run("dp2tp2",
                              {{"one", "--batch_size 4"}, {"tp4", "--nproc 4 --tp 4 --batch_size 4"}});
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
      {"--pp 2 --nproc 3", "--pp 2 must divide the world size 3", 0}};
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
