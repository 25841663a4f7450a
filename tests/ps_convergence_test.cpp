// Async and ssp parameter servers converge like sync (the issue's 5% target): on a small real
// corpus (scripts/demo.sh's: Debian's fortunes as bytes), after the same tokens (sync 100 updates
// of 3 workers x 4 sequences; async and ssp 300 updates of one worker's 4 sequences each), the
// val loss of async and of ssp s=1 is at most 5% above sync's. Measured (loaded 2-core VM): sync
// 3.412 (deterministic), async 3.231 to 3.321, ssp 3.224 to 3.251; with lr / W instead of
// lr / sqrt(W) async ended 3.59 (+5.3%, caught). Async and ssp depend on the order pushes arrive
// in; at this lr (1e-3) that moved the loss by under 0.1 in every run, well inside the margin.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "temp_dir.hpp"
#include "train_cli_util.hpp"

namespace loom {
namespace {
namespace fs = std::filesystem;
using testing::Result;

constexpr const char* kCorpus = "/usr/share/games/fortunes";

class PsConvergence : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::is_directory(kCorpus)) GTEST_SKIP() << kCorpus << " not found (scripts/setup.sh)";
    data_ = dir_ / "data";
    const Result t = testing::loom_cli(std::string("tokenize --input ") + kCorpus + " --out_dir " +
                                           data_ + " --tokenizer byte --val_fraction 0.05",
                                       120);
    ASSERT_EQ(t.rc, 0) << t.out;
    config_ = dir_ / "small.json";
    std::ofstream(config_) << R"({
      "model": {"vocab_size": 257, "context_len": 64, "n_layer": 2, "n_head": 4, "d_model": 64,
                "dropout": 0.0, "qkv_bias": true},
      "train": {"batch_size": 4, "seq_len": 64, "lr": 0.001, "initial_lr": 0.0001,
                "min_lr": 0.0001, "weight_decay": 0.1, "beta1": 0.9, "beta2": 0.99,
                "max_norm": 1.0, "eval_freq": 0, "sample_freq": -1, "save_freq": 0,
                "seed": 1337, "threads": 1, "log_file": "metrics.jsonl"}})";
  }

  // The val loss (`loom eval`) after training `out` with `flags` on 1 server and 3 workers.
  double val_loss(const std::string& out, const std::string& flags) {
    const std::string dir = dir_ / out;
    const Result r = testing::loom_cli("train --config " + config_ + " --data_dir " + data_ +
                                           " --out_dir " + dir + " --nproc 4 --ps 1 " + flags,
                                       180);
    EXPECT_EQ(r.rc, 0) << r.out;
    const Result e = testing::loom_cli(
        "eval --checkpoint " + dir + " --data_dir " + data_ + " --seq_len 64", 120);
    EXPECT_EQ(e.rc, 0) << e.out;
    double loss = 0;
    const size_t at = e.out.rfind("| loss ");
    EXPECT_TRUE(at != std::string::npos && std::sscanf(e.out.c_str() + at, "| loss %lf", &loss) == 1)
        << e.out;
    return loss;
  }

  testing::TempDir dir_;
  std::string data_, config_;
};

TEST_F(PsConvergence, AsyncAndSspEndWithinFivePercentOfSyncAfterTheSameTokens) {
  const double sync = val_loss("sync", "--max_steps 100 --warmup_steps 10");
  const double async = val_loss("async", "--ps_mode async --max_steps 300 --warmup_steps 30");
  const double ssp =
      val_loss("ssp", "--ps_mode ssp --staleness 1 --max_steps 300 --warmup_steps 30");
  ASSERT_GT(sync, 0);
  std::printf("val loss after 76,800 tokens: sync %.4f, async %.4f (%+.1f%%), ssp s=1 %.4f (%+.1f%%)\n",
              sync, async, 100 * (async / sync - 1), ssp, 100 * (ssp / sync - 1));
  EXPECT_LT(async, 1.05 * sync);
  EXPECT_LT(ssp, 1.05 * sync);
}

}  // namespace
}  // namespace loom
