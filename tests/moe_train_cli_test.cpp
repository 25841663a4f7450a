// Training a mixture-of-experts GPT end to end (issue 19) with the real CLI: one rank trains,
// evaluates, generates and resumes; two data-parallel ranks (experts replicated, their gradients
// averaged like every other parameter) match one rank with the whole batch; so do expert-parallel
// ranks (--ep: each runs its share of the experts, the tokens travelling by all-to-all; shm and
// mpirun), whose checkpoints resume at any ep; a bad --ep is refused before any rank starts.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
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

const std::string kText = "the quick brown fox jumps over the lazy dog. ";
// Block 1 of 2 is an MoE block with 4 experts, top 2.
const std::string kMoe = " --moe_experts 4 --moe_top_k 2 --moe_every 2 ";

class MoeTrainCli : public ::testing::Test {
 protected:
  void SetUp() override {
    config_ = testing::make_run(dir_, kText, 40,
                                {{"seq_len", 16}, {"max_steps", 6}, {"warmup_steps", 2},
                                 {"eval_freq", 3}, {"save_freq", 3}, {"sample_freq", 3}});
  }
  Result train(const std::string& out, const std::string& flags) {
    return loom_cli("train --config " + config_ + " --out_dir " + dir_ / out + kMoe + flags);
  }
  std::string out(const std::string& name) { return dir_ / name; }

  testing::TempDir dir_;
  std::string config_;
};

TEST_F(MoeTrainCli, OneRankTrainsEvaluatesGeneratesAndResumes) {
  Result r = train("full", "");
  ASSERT_EQ(r.rc, 0) << r.out;
  const auto full = train_losses(out("full") + "/metrics.jsonl");
  ASSERT_EQ(full.size(), 6u);
  for (const auto& [step, loss] : full) EXPECT_TRUE(std::isfinite(loss)) << step;
  EXPECT_LT(full.at(6), full.at(1));

  // Stopped after 3 steps and resumed: the same next losses.
  r = train("part", "--max_steps 3");
  ASSERT_EQ(r.rc, 0) << r.out;
  r = train("part", "--resume latest --max_steps 6");
  ASSERT_EQ(r.rc, 0) << r.out;
  const auto resumed = train_losses(out("part") + "/metrics.jsonl");
  for (int step = 4; step <= 6; ++step) EXPECT_DOUBLE_EQ(resumed.at(step), full.at(step)) << step;

  r = loom_cli("eval --checkpoint " + out("full") + "/latest --data_dir " + dir_ / "data" +
               " --threads 1 --max_windows 2");
  ASSERT_EQ(r.rc, 0) << r.out;
  r = loom_cli("generate --checkpoint " + out("full") +
               "/latest --prompt the --max_new_tokens 12 --temperature 0");
  ASSERT_EQ(r.rc, 0) << r.out;
}

// Every step logs the auxiliary losses (apart from the cross-entropy `loss`), the dropped share
// and the max/mean expert load, on its stdout line and in the metrics log.
TEST_F(MoeTrainCli, StepsLogTheAuxiliaryLossesDroppedShareAndExpertLoad) {
  // A capacity factor of 0.5 must drop: each expert takes at most half its even share.
  const Result r = train("log", "--moe_capacity_factor 0.5 --moe_aux_loss_coef 0.01 "
                                "--moe_z_loss_coef 0.001");
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("step 1/6 | loss "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(" | moe aux 0.0"), std::string::npos) << r.out;
  std::ifstream in(out("log") + "/metrics.jsonl");
  int steps = 0;
  for (std::string line; std::getline(in, line);) {
    const auto j = nlohmann::json::parse(line);
    if (j["type"] != "train") continue;
    ++steps;
    // One MoE block: a E sum f_i P_i is about a (even routing; top-k picks the likely experts, so
    // not far below), z mean lse^2 is positive, half the assignments at least are dropped (each
    // expert keeps at most 0.5 x its even share), and the busiest expert keeps at least the mean.
    EXPECT_GT(j.at("aux_loss").get<double>(), 0.005) << line;
    EXPECT_LT(j.at("aux_loss").get<double>(), 0.04) << line;
    EXPECT_GT(j.at("z_loss").get<double>(), 0) << line;
    EXPECT_GE(j.at("dropped_share").get<double>(), 0.5) << line;
    EXPECT_LT(j.at("dropped_share").get<double>(), 1) << line;
    EXPECT_GE(j.at("max_over_mean_load").get<double>(), 1) << line;
  }
  EXPECT_EQ(steps, 6);
}

// Dropless and without the load-balancing loss (each rank's own share of it is not linear in
// its tokens: the capacity and f_i P_i are per rank, as issue 19 defines them), two ranks with
// half the batch each take the steps of one rank with the whole batch.
TEST_F(MoeTrainCli, TwoDataParallelRanksMatchOneRankWithTheWholeBatch) {
  const std::string exact = "--moe_capacity_factor 0 --moe_aux_loss_coef 0 ";
  Result r = train("ref", exact + "--batch_size 8");
  ASSERT_EQ(r.rc, 0) << r.out;
  r = train("dp2", exact + "--batch_size 4 --nproc 2");
  ASSERT_EQ(r.rc, 0) << r.out;
  const std::string step = "/step_000006/";
  EXPECT_LT(relative_error(out("dp2") + step + "model.safetensors",
                           out("ref") + step + "model.safetensors"),
            1e-5);
  EXPECT_LT(relative_error(out("dp2") + step + "optimizer.safetensors",
                           out("ref") + step + "optimizer.safetensors"),
            1e-5);
}

// 20 steps, checkpoints at 10 and 20, dropless and without the load-balancing loss (see above).
const std::string kExact =
    "--moe_capacity_factor 0 --moe_aux_loss_coef 0 --max_steps 20 --save_freq 10 --eval_freq 10 "
    "--sample_freq 10 ";

void expect_same_run(const std::string& a, const std::string& b, int step) {
  const std::string dir = "/step_0000" + std::to_string(step) + "/";
  EXPECT_LT(relative_error(a + dir + "model.safetensors", b + dir + "model.safetensors"), 1e-5)
      << a << " vs " << b;
  EXPECT_LT(relative_error(a + dir + "optimizer.safetensors", b + dir + "optimizer.safetensors"),
            1e-5)
      << a << " vs " << b;
  const auto la = train_losses(a + "/metrics.jsonl"), lb = train_losses(b + "/metrics.jsonl");
  for (const auto& [s, loss] : lb)
    if (la.count(s)) EXPECT_NEAR(la.at(s), loss, 1e-5 * std::abs(loss)) << a << " step " << s;
}

TEST_F(MoeTrainCli, ExpertParallelRanksMatchOneRankAndTheirCheckpointsResumeAtAnyEp) {
  Result r = train("ref", kExact + "--batch_size 8");
  ASSERT_EQ(r.rc, 0) << r.out;
  // ep 2 at 2 ranks: one data-parallel group of 2, 2 of the 4 experts on each rank.
  r = train("ep2", kExact + "--batch_size 4 --nproc 2 --ep 2");
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("plan: 2 ranks = pp 1 x dp 2 x tp 1 x ep 2"), std::string::npos) << r.out;
  expect_same_run(out("ep2"), out("ref"), 20);
  // ep 2 x dp 2 at 4 ranks: two expert-parallel groups of 2; ZeRO-1 shards the moments.
  r = train("ep2dp2", kExact + "--batch_size 2 --nproc 4 --ep 2 --zero 1");
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("plan: 4 ranks = pp 1 x dp 4 x tp 1 x ep 2"), std::string::npos) << r.out;
  expect_same_run(out("ep2dp2"), out("ref"), 20);

  // ep 2's checkpoint of step 10 resumed at 1 rank, and 1 rank's at ep 2: the same steps 11-20.
  r = train("ep2_to_1", kExact + "--batch_size 8 --resume " + out("ep2") + "/step_000010");
  ASSERT_EQ(r.rc, 0) << r.out;
  expect_same_run(out("ep2_to_1"), out("ref"), 20);
  r = train("1_to_ep2", kExact + "--batch_size 4 --nproc 2 --ep 2 --resume " + out("ref") +
                            "/step_000010");
  ASSERT_EQ(r.rc, 0) << r.out;
  expect_same_run(out("1_to_ep2"), out("ref"), 20);
}

// The same all-to-alls over Open MPI: mpirun's 2 ranks at ep 2 take one rank's steps.
TEST_F(MoeTrainCli, ExpertParallelUnderMpirunMatchesOneRank) {
  Result r = train("ref", kExact + "--batch_size 8");
  ASSERT_EQ(r.rc, 0) << r.out;
  r = testing::mpirun_cli(2, "train --config " + config_ + " --out_dir " + out("mpi") + kMoe +
                                 kExact + "--batch_size 4 --ep 2");
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("plan: 2 ranks = pp 1 x dp 2 x tp 1 x ep 2"), std::string::npos) << r.out;
  expect_same_run(out("mpi"), out("ref"), 20);
}

TEST_F(MoeTrainCli, BadExpertParallelismIsRefusedBeforeAnyRankStarts) {
  struct Case {
    std::string flags, says;
  };
  const Case cases[] = {
      {"--nproc 4 --ep 3", "--ep 3 must divide moe_experts 4"},
      {"--nproc 2 --ep 4", "--ep 4 must divide the data-parallel size 2"},
      {"--nproc 2 --ep 2 --moe_experts 0", "--ep 2 splits the experts of a mixture-of-experts "
                                           "model, but this model is dense"},
      {"--ep 0", "ep must be >= 1, got 0"},
  };
  for (const Case& c : cases) {
    const Result r = train("bad", c.flags);
    EXPECT_NE(r.rc, 0) << c.flags;
    EXPECT_NE(r.out.find(c.says), std::string::npos) << c.flags << ": " << r.out;
    EXPECT_FALSE(std::filesystem::exists(out("bad"))) << c.flags << ": wrote " << out("bad");
  }
}

}  // namespace
}  // namespace loom
