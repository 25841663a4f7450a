// `loom memory`: the prediction by component, and the prediction against the peak RSS measured
// by the command itself (f32, bf16, recompute selective and full, and ZeRO-2 on two ranks)
// within 10%.
#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <string>

#include "loom/kernels/cpu/matmul.hpp"
#include "loom/train/memory_model.hpp"
#include "temp_dir.hpp"
#include "train_cli_util.hpp"

namespace loom {
namespace {

// A model whose state and activations (~100 MiB) dwarf the process's own ~10 MiB.
GPTConfig mid_model() {
  GPTConfig c;
  c.vocab_size = 8192;
  c.context_len = 128;
  c.n_layer = 2;
  c.n_head = 4;
  c.d_model = 256;
  return c;
}

double item(const std::vector<MemoryItem>& items, const std::string& prefix) {
  for (const auto& i : items)
    if (i.name.rfind(prefix, 0) == 0) return i.bytes;
  return -1;
}

TEST(MemoryModel, ComponentsFollowPrecisionAndZero) {
  MemoryOptions o;
  o.model = mid_model();
  o.batch = 4;
  o.seq = 128;
  const double P = static_cast<double>(o.model.num_params());
  const auto base = predict_memory(o);
  EXPECT_EQ(item(base, "parameters"), 4 * P);
  EXPECT_EQ(item(base, "AdamW moments"), 8 * P);
  EXPECT_EQ(item(base, "bf16 weight copies"), -1);
  EXPECT_EQ(item(base, "shm ring"), -1);
  // Logits: B*T*V floats.
  EXPECT_EQ(item(base, "logits"), 4.0 * (4 * 128 * 8192 + 2 * 512));
  o.precision = kernels::MatmulPrecision::kBF16;
  EXPECT_GT(item(predict_memory(o), "bf16 weight copies"), 0);
  o.world = 2;
  o.zero = 2;
  const auto z2 = predict_memory(o);
  EXPECT_EQ(item(z2, "AdamW moments"), 4 * P);
  // Two blocks fit one bucket: with no bucket to reuse a buffer, every bucket stays resident.
  EXPECT_EQ(item(z2, "gradients"), 4 * P);
  EXPECT_GT(item(z2, "shm ring"), 0);
  // Eight blocks of 0.75 M parameters in 1 MiB buckets: a pool of two block-sized buffers (one
  // also holds ln_f, in the last block's bucket), the embedding (V*C + T*C) and half the rest.
  o.model.n_layer = 8;
  o.bucket_mb = 1;
  const double C = 256, block = 12 * C * C + 13 * C, embedding = (8192 + 128) * C;
  const double blocks = 8 * block + 2 * C;  // and ln_f, in the last block's bucket
  EXPECT_NEAR(item(predict_memory(o), "gradients"),
              4 * (2 * block + 2 * C + embedding + blocks / 2), 4 * 8);
  EXPECT_LT(item(predict_memory(o), "gradients"), 0.85 * 4 * o.model.num_params());
}

TEST(MemoryModel, RecomputeKeepsFewerBlockActivations) {
  MemoryOptions o;
  o.model = mid_model();
  o.batch = 4;
  o.seq = 128;
  const double N = 4 * 128, C = 256, H = 4, T = 128, L = 2;
  const auto none = predict_memory(o);
  EXPECT_EQ(item(none, "attention probabilities"), 4 * L * N * T * H);
  EXPECT_EQ(item(none, "qkv"), 4 * L * 3 * N * C);
  o.recompute = Recompute::kSelective;  // one shared (B,H,T,T) buffer, the rest unchanged
  const auto selective = predict_memory(o);
  EXPECT_EQ(item(selective, "attention probabilities"), 4 * N * T * H);
  EXPECT_EQ(item(selective, "qkv"), item(none, "qkv"));
  o.recompute = Recompute::kFull;  // one shared set of block activations, L block outputs
  const auto full = predict_memory(o);
  EXPECT_EQ(item(full, "qkv"), 4 * 3 * N * C);
  EXPECT_EQ(item(full, "residual stream"), 4 * (1 + L + 1) * N * C);
  EXPECT_EQ(item(full, "logits"), item(none, "logits"));
}

class MemoryCli : public ::testing::Test {
 protected:
  void SetUp() override {
    nlohmann::json cfg = {{"model", mid_model()}};
    std::ofstream(dir_ / "model.json") << cfg.dump();
  }
  // predicted / measured of every rank's line.
  std::vector<double> ratios(const std::string& flags) {
    const auto r = testing::loom_cli("memory --config " + dir_ / "model.json" +
                                     " --batch 4 --seq 128 --threads 1 " + flags);
    EXPECT_EQ(r.rc, 0) << r.out;
    std::vector<double> out;
    const std::regex re("predicted / measured ([0-9.]+)");
    for (std::sregex_iterator it(r.out.begin(), r.out.end(), re), end; it != end; ++it)
      out.push_back(std::stod((*it)[1]));
    return out;
  }
  testing::TempDir dir_;
};

TEST_F(MemoryCli, PredictionIsWithinTenPercentOfTheMeasuredPeak) {
  std::vector<std::string> runs = {"", "--nproc 2 --zero 2", "--recompute selective",
                                   "--recompute full"};
  if (kernels::bf16_matmul_available()) runs.push_back("--precision bf16");
  for (const std::string& flags : runs) {
    const auto r = ratios(flags);
    ASSERT_EQ(r.size(), flags.find("nproc 2") != std::string::npos ? 2u : 1u) << flags;
    for (double x : r) {
      EXPECT_GT(x, 0.9) << flags;
      EXPECT_LT(x, 1.1) << flags;
    }
  }
}

TEST_F(MemoryCli, BadFlagsAreRefused) {
  auto r = testing::loom_cli("memory --config " + dir_ / "model.json" + " --seq 64 --zero 3");
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.out.find("--zero must be 0, 1 or 2, got 3"), std::string::npos) << r.out;
  r = testing::loom_cli("memory --config " + dir_ / "model.json" + " --seq 64 --precision fp8");
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.out.find("unknown precision \"fp8\""), std::string::npos) << r.out;
}

}  // namespace
}  // namespace loom
