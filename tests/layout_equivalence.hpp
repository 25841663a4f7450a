#pragma once
// Fixture of the end-to-end layout tests (tensor and pipeline parallelism): a tiny run on the
// byte vocabulary, `loom train` in any layout, and the check that a run's per-step losses and
// final parameters and moments match the 1-rank run with the same global batch of 4 sequences.
#include <gtest/gtest.h>

#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "temp_dir.hpp"
#include "train_cli_util.hpp"

namespace loom::testing {

class LayoutEquivalenceTest : public ::testing::Test {
 protected:
  static constexpr double kTolerance = 1e-5;

  // The model: 12 heads of width 4 (tp 2, 3, 4 divide them), `n_layer` blocks.
  void make_config(int n_layer) {
    config_ = make_run(dir_, "the quick brown fox jumps over the lazy dog. ", 40,
                       {{"seq_len", 16}, {"max_steps", 20}, {"eval_freq", 10},
                        {"save_freq", 10}, {"sample_freq", 10}});
    nlohmann::json j = nlohmann::json::parse(std::ifstream(config_));
    j["model"]["n_layer"] = n_layer;
    j["model"]["n_head"] = 12;
    j["model"]["d_model"] = 48;
    std::ofstream(config_) << j.dump(2);
  }
  // `loom train` (mpi_ranks > 0: under mpirun) writing to out_dir `out`.
  Result train(const std::string& out, const std::string& flags, int mpi_ranks = 0) {
    const std::string args = "train --config " + config_ + " --out_dir " + dir_ / out + " " + flags;
    return mpi_ranks > 0 ? mpirun_cli(mpi_ranks, args, 240) : loom_cli(args, 240);
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
  // Per-step losses and the final parameters (and moments) of run `out` match the reference's.
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

  // Run `saved` (20 steps) resumed from its step-10 checkpoint as each (out, flags) layout: the
  // next 10 steps' losses are the uninterrupted run's.
  void expect_resumes_like_the_run(const std::string& saved,
                                   const std::vector<std::pair<std::string, std::string>>& layouts) {
    const auto full = train_losses(dir_ / saved + "/metrics.jsonl");
    const std::string ckpt = dir_ / saved + "/step_000010";
    for (const auto& [out, flags] : layouts) {
      const Result r = train(out, "--resume " + ckpt + " " + flags);
      ASSERT_EQ(r.rc, 0) << r.out;
      const auto resumed = train_losses(dir_ / out + "/metrics.jsonl");
      ASSERT_EQ(resumed.size(), 10u) << out;
      for (const auto& [step, loss] : resumed)
        EXPECT_LT(std::abs(loss - full.at(step)) / loss, kTolerance) << out << " step " << step;
    }
  }

  TempDir dir_;
  std::string config_, reference_;
};

}  // namespace loom::testing
