// `loom train --precision`: bf16 training tracks f32 on real text, the forced fallback (no
// AVX512_BF16) trains exactly as f32 after a one-line notice, and bad values are refused.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "loom/data/token_shard.hpp"
#include "loom/kernels/cpu/matmul.hpp"
#include "temp_dir.hpp"
#include "train_cli_util.hpp"

namespace loom {
namespace {
using testing::loom_cli;
using testing::Result;
using testing::train_losses;

// Real English text (Debian's fortunes package, installed by scripts/setup.sh), byte-level.
std::string real_text() {
  std::ifstream in("/usr/share/games/fortunes/literature");
  return std::string(std::istreambuf_iterator<char>(in), {});
}

size_t count(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) ++n;
  return n;
}

class PrecisionCli : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string text = real_text();
    ASSERT_GT(text.size(), 10000u) << "fortunes-mod text not installed";
    // make_run's validation shard is 4 repetitions of its text; the train shard is replaced by
    // the whole text.
    config_ = testing::make_run(dir_, text.substr(0, text.size() / 4), 4,
                                {{"max_steps", 300}, {"eval_freq", 0}, {"save_freq", 0},
                                 {"sample_freq", -1}, {"warmup_steps", 20}, {"lr", 3e-3},
                                 {"min_lr", 3e-4}});
    std::vector<uint16_t> ids;
    for (unsigned char ch : text) ids.push_back(ch);
    write_shard(dir_ / "data/tiny_train_000000.bin", ids);
  }
  // env: "" or "env NAME=value" (run_bounded puts `timeout` in front of the command).
  Result train(const std::string& out, const std::string& flags, const std::string& env = "") {
    return testing::run_bounded(env + " " + LOOM_BINARY + " train --config " + config_ +
                                " --out_dir " + dir_ / out + " " + flags);
  }
  testing::TempDir dir_;
  std::string config_;
};

// 300 steps of the byte-level tiny model (L=2, C=32, batch 4 x 32) on 53 kB of literature
// quotes: the bf16 run's final loss is within 2% of the f32 run's (same seed and batches), and
// the runs did differ (bf16 really ran).
TEST_F(PrecisionCli, Bf16TrainingTracksF32OnRealText) {
  if (!kernels::bf16_matmul_available()) GTEST_SKIP() << "no AVX512_BF16 on this CPU";
  const Result f32 = train("f32", "--precision f32");
  ASSERT_EQ(f32.rc, 0) << f32.out;
  const Result bf16 = train("bf16", "--precision bf16");
  ASSERT_EQ(bf16.rc, 0) << bf16.out;
  EXPECT_NE(bf16.out.find("bf16 matmuls"), std::string::npos) << bf16.out;
  const auto a = train_losses(dir_ / "f32/metrics.jsonl");
  const auto b = train_losses(dir_ / "bf16/metrics.jsonl");
  ASSERT_EQ(a.size(), 300u);
  ASSERT_EQ(b.size(), 300u);
  EXPECT_LT(a.at(300), 0.8 * a.at(1)) << "the f32 run did not learn";
  const double rel = std::abs(b.at(300) - a.at(300)) / a.at(300);
  std::printf("final loss f32 %.4f bf16 %.4f (rel. diff %.4f)\n", a.at(300), b.at(300), rel);
  EXPECT_LT(rel, 0.02);
  EXPECT_NE(a.at(300), b.at(300));
}

TEST_F(PrecisionCli, ForcedFallbackTrainsExactlyAsF32WithOneNotice) {
  const Result f32 = train("f32", "--max_steps 5 --warmup_steps 1");
  ASSERT_EQ(f32.rc, 0) << f32.out;
  const Result fb = train("fallback", "--max_steps 5 --warmup_steps 1 --precision bf16", "env LOOM_BF16=0");
  ASSERT_EQ(fb.rc, 0) << fb.out;
  EXPECT_EQ(count(fb.out, "bf16 matmul unavailable"), 1u) << fb.out;
  EXPECT_NE(fb.out.find("f32 matmuls"), std::string::npos) << fb.out;
  EXPECT_EQ(train_losses(dir_ / "f32/metrics.jsonl"), train_losses(dir_ / "fallback/metrics.jsonl"));
}

// f32 products moved from OpenBLAS to oneDNN: 20 steps on each stay within 1e-5 of each other
// (different summation orders, not bit-identical), and a bad backend name is refused up front.
TEST_F(PrecisionCli, F32OnOneDnnMatchesOpenBlas) {
  const Result blas = train("blas", "--max_steps 20 --warmup_steps 5", "env LOOM_F32_MATMUL=openblas");
  ASSERT_EQ(blas.rc, 0) << blas.out;
  const Result dnnl = train("dnnl", "--max_steps 20 --warmup_steps 5");
  ASSERT_EQ(dnnl.rc, 0) << dnnl.out;
  const double e = testing::relative_error(dir_ / "dnnl/step_000020/model.safetensors",
                                           dir_ / "blas/step_000020/model.safetensors");
  std::printf("oneDNN vs OpenBLAS f32 parameters after 20 steps: rel. error %.2e\n", e);
  EXPECT_LT(e, 1e-5);
  const Result bad = train("bad", "--max_steps 20 --warmup_steps 5", "env LOOM_F32_MATMUL=mkl");
  EXPECT_NE(bad.rc, 0);
  EXPECT_NE(bad.out.find("LOOM_F32_MATMUL: expected onednn or openblas"), std::string::npos)
      << bad.out;
  EXPECT_FALSE(std::filesystem::exists(dir_ / "bad"));
}

TEST_F(PrecisionCli, UnknownPrecisionIsRefusedBeforeAnythingIsWritten) {
  const Result r = train("bad", "--precision fp8");
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.out.find("unknown precision \"fp8\" (expected f32 or bf16)"), std::string::npos)
      << r.out;
  EXPECT_FALSE(std::filesystem::exists(dir_ / "bad"));
}

}  // namespace
}  // namespace loom
