// ZeRO-2 end to end: gradients reduce-scattered bucket by bucket during backward, moments
// sharded per bucket. N ranks (also with tensor parallelism) must match one rank with the whole
// batch (parameters and saved moments), and a ZeRO-2 checkpoint must resume on one rank without
// ZeRO.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "temp_dir.hpp"
#include "train_cli_util.hpp"

namespace loom {
namespace {
using testing::loom_cli;
using testing::relative_error;
using testing::Result;
using testing::train_losses;

constexpr double kTolerance = 1e-5;
const std::string kText = "the quick brown fox jumps over the lazy dog. ";

class ZeroTwoCli : public ::testing::Test {
 protected:
  void SetUp() override {
    // Five blocks of 12.7k parameters; --bucket_mb 0.01 makes each block a bucket, so the
    // five buckets take turns in the pool of two buffers (ZeRO-2 reuses them while earlier
    // buckets are reduce-scattered) and several reduce-scatters overlap backward.
    config_ = testing::make_run(dir_, kText, 40,
                                {{"seq_len", 16}, {"max_steps", 6}, {"warmup_steps", 2},
                                 {"eval_freq", 0}, {"save_freq", 3}, {"sample_freq", -1},
                                 {"bucket_mb", 0.01}});
    nlohmann::json cfg = nlohmann::json::parse(std::ifstream(config_));
    cfg["model"]["n_layer"] = 5;
    std::ofstream(config_) << cfg.dump(2);
  }
  Result train(const std::string& out, const std::string& flags) {
    return loom_cli("train --config " + config_ + " --out_dir " + dir_ / out + " " + flags);
  }
  double error(const std::string& a, const std::string& b, const std::string& file) {
    return relative_error(dir_ / a + "/step_000006/" + file, dir_ / b + "/step_000006/" + file);
  }
  testing::TempDir dir_;
  std::string config_;
};

TEST_F(ZeroTwoCli, MatchesOneRankOnTwoAndThreeRanksAndResumesOnOne) {
  ASSERT_EQ(train("ref", "--batch_size 12").rc, 0);
  Result r = train("two", "--nproc 2 --zero 2 --batch_size 6");
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("ZeRO-2"), std::string::npos) << r.out;
  r = train("three", "--nproc 3 --zero 2 --batch_size 2 --grad_accum 2");
  ASSERT_EQ(r.rc, 0) << r.out;
  // Buckets large enough that each has a buffer of its own (nothing pooled): accumulated in
  // place and reduced once per step.
  r = train("resident", "--nproc 3 --zero 2 --batch_size 2 --grad_accum 2 --bucket_mb 25");
  ASSERT_EQ(r.rc, 0) << r.out;
  // With tensor parallelism: dp 2 x tp 2, ZeRO-2 over the dp group.
  r = train("dp2tp2", "--nproc 4 --tp 2 --zero 2 --batch_size 6");
  ASSERT_EQ(r.rc, 0) << r.out;
  for (const std::string out : {"two", "three", "resident", "dp2tp2"}) {
    EXPECT_LT(error(out, "ref", "model.safetensors"), kTolerance) << out;
    EXPECT_LT(error(out, "ref", "optimizer.safetensors"), kTolerance) << out;
  }
  // The 2-rank checkpoint of step 3 continues on one rank (no ZeRO) as the 2-rank run did.
  r = train("one", "--resume " + dir_ / "two/step_000003" + " --batch_size 12");
  ASSERT_EQ(r.rc, 0) << r.out;
  const auto full = train_losses(dir_ / "two/metrics.jsonl");
  const auto resumed = train_losses(dir_ / "one/metrics.jsonl");
  ASSERT_EQ(resumed.size(), 3u);
  for (const auto& [step, loss] : resumed) EXPECT_NEAR(loss, full.at(step), 1e-5) << step;
  EXPECT_LT(error("one", "two", "model.safetensors"), kTolerance);
}

TEST_F(ZeroTwoCli, PipelineParallelismIsRefusedNamingBothFlags) {
  const Result r = train("bad", "--nproc 2 --zero 2 --pp 2");
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.out.find("--zero 2 cannot be combined with --pp 2"), std::string::npos) << r.out;
  EXPECT_FALSE(std::filesystem::exists(dir_ / "bad"));
}

}  // namespace
}  // namespace loom
