// The optional bf16 gradient all-reduce (--grad_reduce bf16): the buckets really travel as bf16
// (the averaged gradients are bf16-rounded), training on 2 ranks stays close to one rank, and it
// is refused with ZeRO, whose reduce-scatters stay f32.
#include <gtest/gtest.h>

#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "loom/comm/communicator.hpp"
#include "loom/core/rng.hpp"
#include "loom/kernels/cpu/bf16.hpp"
#include "loom/parallel/gradient_buckets.hpp"
#include "temp_dir.hpp"
#include "train_cli_util.hpp"

namespace loom {
namespace {
using testing::loom_cli;
using testing::relative_error;
using testing::Result;
using testing::train_losses;

TEST(Bf16GradReduce, BucketsTravelAsBf16AndComeBackAsItsValues) {
  comm::CommOptions o;
  o.backend = "solo";
  auto c = comm::communicator_from_env(o);
  Rng rng(3);
  std::vector<float> g(1000), original;
  for (float& x : g) x = static_cast<float>(rng.normal());
  original = g;
  parallel::GradientBuckets b(*c, g.data(), g.size(), 300 * sizeof(float), comm::DType::BF16);
  b.on_ready(0, 1000);
  b.finish();
  size_t rounded = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    // The average over one rank of the bf16 value is that value.
    ASSERT_EQ(g[i], kernels::from_bf16(kernels::to_bf16(original[i]))) << i;
    rounded += g[i] != original[i];
  }
  EXPECT_GT(rounded, 900u);  // normal draws almost never fit in 8 mantissa bits
}

class Bf16GradReduceCli : public ::testing::Test {
 protected:
  void SetUp() override {
    config_ = testing::make_run(dir_, "the quick brown fox jumps over the lazy dog. ", 40,
                                {{"seq_len", 16}, {"max_steps", 6}, {"warmup_steps", 2},
                                 {"eval_freq", 0}, {"save_freq", 6}, {"sample_freq", -1},
                                 {"bucket_mb", 0.01}});
  }
  Result train(const std::string& out, const std::string& flags) {
    return loom_cli("train --config " + config_ + " --out_dir " + dir_ / out + " " + flags);
  }
  double error(const std::string& a, const std::string& b) {
    return relative_error(dir_ / a + "/step_000006/model.safetensors",
                          dir_ / b + "/step_000006/model.safetensors");
  }
  testing::TempDir dir_;
  std::string config_;
};

TEST_F(Bf16GradReduceCli, TwoRanksStayCloseToOneRankAndZeroIsRefused) {
  ASSERT_EQ(train("ref", "--batch_size 12").rc, 0);
  Result r = train("f32", "--nproc 2 --batch_size 6");
  ASSERT_EQ(r.rc, 0) << r.out;
  r = train("bf16", "--nproc 2 --batch_size 6 --grad-reduce bf16");
  ASSERT_EQ(r.rc, 0) << r.out;
  const double f32_error = error("f32", "ref"), bf16_error = error("bf16", "ref");
  std::cout << "parameters vs one rank after 6 steps: f32 all-reduce " << f32_error
            << ", bf16 all-reduce " << bf16_error << "\n";
  EXPECT_LT(f32_error, 1e-5);
  EXPECT_LT(bf16_error, 1e-3);
  // The bf16 run did round: it is much further from one rank than the f32 run.
  EXPECT_GT(bf16_error, 10 * f32_error);
  const auto ref = train_losses(dir_ / "ref/metrics.jsonl");
  const auto bf16 = train_losses(dir_ / "bf16/metrics.jsonl");
  ASSERT_EQ(bf16.size(), ref.size());
  EXPECT_NEAR(bf16.rbegin()->second, ref.rbegin()->second, 0.02 * ref.rbegin()->second);

  r = train("bad", "--nproc 2 --zero 1 --grad_reduce bf16");
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.out.find("--grad_reduce bf16 needs --zero 0"), std::string::npos) << r.out;
  r = train("bad", "--grad_reduce fp8");
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.out.find("grad_reduce must be f32 or bf16, got 'fp8'"), std::string::npos) << r.out;
  EXPECT_FALSE(std::filesystem::exists(dir_ / "bad"));
}

}  // namespace
}  // namespace loom
