// Elastic restarts (`loom train --nproc MIN:MAX`): a rank that cannot start (the drill
// LOOM_FAULT_RANK_START=<rank>[:<from restart>]) is lost, and the launcher goes on with the
// largest world the job accepts, raising grad_accum to keep the global batch; the loss curve is
// the uninterrupted run's up to float summation order. Worlds that cannot keep the batch, or too
// few ranks left, end the job with the reason.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "temp_dir.hpp"
#include "train_cli_util.hpp"

namespace loom {
namespace {
using testing::loom_cli;
using testing::Result;
using testing::train_losses;

constexpr double kTolerance = 1e-5;

class ElasticCli : public ::testing::Test {
 protected:
  void SetUp() override {
    config_ = testing::make_run(dir_, "the quick brown fox jumps over the lazy dog. ", 40,
                                {{"seq_len", 16}, {"batch_size", 2}, {"max_steps", 6},
                                 {"warmup_steps", 2}, {"eval_freq", 0}, {"save_freq", 3},
                                 {"sample_freq", -1}});
  }
  Result train(const std::string& out, const std::string& flags, const std::string& env = "") {
    return testing::run_bounded(env + " " + std::string(LOOM_BINARY) + " train --config " +
                                    config_ + " --out_dir " + dir_ / out + " --oversubscribe " + flags,
                                180);
  }
  void expect_same_losses(const std::string& out, const std::string& ref) {
    const auto got = train_losses(dir_ / out + "/metrics.jsonl");
    const auto want = train_losses(dir_ / ref + "/metrics.jsonl");
    ASSERT_EQ(got.size(), want.size()) << out;
    for (const auto& [step, loss] : want) {
      ASSERT_TRUE(got.count(step)) << out << ": no loss for step " << step;
      EXPECT_LT(std::abs(got.at(step) - loss) / loss, kTolerance) << out << " step " << step;
    }
  }
  testing::TempDir dir_;
  std::string config_;
};

// 4 ranks asked, rank 3 never starts: 3 ranks cannot share the global batch of 8 sequences in
// micro-batches of 2, so the job goes on with 2 ranks at grad_accum 2 and trains exactly the
// 4-rank run's steps.
TEST_F(ElasticCli, LostRankContinuesOnFewerRanksWithTheSameLosses) {
  const Result ref = train("ref", "--nproc 4");
  ASSERT_EQ(ref.rc, 0) << ref.out;
  const Result r = train("elastic", "--nproc 2:4 --max_restarts 1 --resume auto",
                         "env LOOM_FAULT_RANK_START=3");
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("rank 3 fails to start"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("elastic: not 3 ranks: its 3 data-parallel ranks cannot share the global "
                       "batch of 8 sequences"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("restarting on 2 of 4 ranks (grad_accum 2 keeps the global batch of 8 "
                       "sequences)"), std::string::npos) << r.out;
  expect_same_losses("elastic", "ref");
}

// Without MIN:MAX the same lost rank only restarts the same 4 ranks, which fail again.
TEST_F(ElasticCli, WithoutElasticTheLostRankEndsTheJob) {
  const Result r = train("fixed", "--nproc 4 --max_restarts 1 --resume auto",
                         "env LOOM_FAULT_RANK_START=3");
  EXPECT_NE(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("restarting all 4 ranks"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("giving up after 1 restart(s)"), std::string::npos) << r.out;
}

// Under tp 2 a world of 3 is no layout and 2 is below MIN: the job ends saying why.
TEST_F(ElasticCli, NoWorldThatFitsEndsTheJobWithTheReason) {
  const Result r = train("tp", "--nproc 3:4 --tp 2 --max_restarts 1 --resume auto",
                         "env LOOM_FAULT_RANK_START=1");
  EXPECT_NE(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("elastic: not 3 ranks: tp x pp = 2 ranks per replica does not divide it"),
            std::string::npos) << r.out;
  EXPECT_NE(r.out.find("no world of 3 to 3 ranks can run the job"), std::string::npos) << r.out;
}

TEST_F(ElasticCli, BadRangesAreRefusedBeforeAnyRankStarts) {
  for (const char* bad : {"5:4", ":4", "2:", "0:4"}) {
    const Result r = train("bad", std::string("--nproc ") + bad);
    EXPECT_NE(r.rc, 0) << bad;
    EXPECT_NE(r.out.find("nproc"), std::string::npos) << bad << ": " << r.out;
    EXPECT_EQ(r.out.find("rank 0"), std::string::npos) << bad << ": " << r.out;
    EXPECT_FALSE(std::filesystem::exists(dir_ / "bad")) << bad;
  }
}

}  // namespace
}  // namespace loom
