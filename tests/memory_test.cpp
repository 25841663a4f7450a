// `loom memory`: the prediction by component (parameters against the tp and pipeline-stage
// layouts, tp splits, activation sets per schedule), and the prediction against the peak RSS
// measured by the command itself at every layout it predicts (f32, bf16, recompute selective
// and full, ZeRO-1 and 2, tp 2, pp 2 under 1F1B, GPipe and zb1p, pp 2 x tp 2) within 2%; bad
// layouts refused.
#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <string>

#include "loom/config/train_config.hpp"
#include "loom/core/check.hpp"
#include "loom/kernels/cpu/matmul.hpp"
#include "loom/model/param_layout.hpp"
#include "loom/parallel/planner/memory_model.hpp"
#include "sanitizer_build.hpp"
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
  EXPECT_EQ(item(base, "logits"), 4.0 * 4 * 128 * 8192);
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

// GPT-2 XL (configs/gpt2-xl.json) at dp 4, B 4 x T 1024: each ZeRO stage holds less model
// state, ZeRO-3 about a quarter of the parameters plus its working buffers (the ends and two
// blocks), and the figures are those of a 1.56 B-parameter model.
TEST(MemoryModel, Gpt2XlModelStateShrinksWithEachZeroStage) {
  MemoryOptions o;
  o.model = load_model_config(std::string(LOOM_SOURCE_DIR) + "/configs/gpt2-xl.json");
  o.batch = 4;
  o.seq = 1024;
  o.world = 4;
  const double P = static_cast<double>(o.model.num_params());
  EXPECT_NEAR(P, 1.558e9, 0.01e9);
  double state[4];
  for (o.zero = 0; o.zero <= 3; ++o.zero) {
    const auto items = predict_memory(o);
    state[o.zero] = item(items, "parameters") + item(items, "gradients") + item(items, "AdamW");
    EXPECT_EQ(state[o.zero],
              model_state_bytes(o.model, ModelShard{}, 4, o.zero, o.bucket_mb).total());
    if (o.zero > 0) {
      EXPECT_LT(state[o.zero], state[o.zero - 1]) << "ZeRO-" << o.zero;
    }
  }
  EXPECT_EQ(state[0], 16 * P);  // f32 parameters, gradients, two moments
  EXPECT_NEAR(state[1], 8 * P + 2 * P, 16);
  o.zero = 3;
  const auto zero3 = predict_memory(o);
  const double C = 1600, block = 12 * C * C + 13 * C, ends = (50257 + 1024) * C + 2 * C;
  EXPECT_NEAR(item(zero3, "parameters"), 4 * (P / 4 + ends + 2 * block), 4 * 4);
  EXPECT_NEAR(item(zero3, "AdamW"), 8 * P / 4, 8 * 4);
  EXPECT_LT(state[3], 0.3 * state[0]);
  // Activations do not depend on the ZeRO stage.
  o.zero = 0;
  EXPECT_EQ(item(zero3, "kept for W"), item(predict_memory(o), "kept for W"));
}

TEST(MemoryModel, RecomputeKeepsFewerBlockActivations) {
  MemoryOptions o;
  o.model = mid_model();
  o.batch = 4;
  o.seq = 128;
  const double N = 4 * 128, C = 256, H = 4, T = 128, L = 2;
  const double att = 4 * N * T * H, stats = 4 * 4 * N;  // one block's probabilities, statistics
  // ln_1, mid, ln_2 (C each), qkv (3C), attention output (C), c_fc and GELU (4C each): 15C.
  const double linear = 4 * 15 * N * C, output = 4 * N * C;
  const auto none = predict_memory(o);
  EXPECT_EQ(item(none, "kept for W"), L * (linear + output));
  EXPECT_EQ(item(none, "B-only per block"), L * (stats + att));
  EXPECT_EQ(item(none, "recomputed"), -1);
  o.recompute = Recompute::kSelective;  // one shared (B,H,T,T) buffer, the rest unchanged
  const auto selective = predict_memory(o);
  EXPECT_EQ(item(selective, "recomputed attention probabilities"), att);
  EXPECT_EQ(item(selective, "B-only per block"), L * stats);
  EXPECT_EQ(item(selective, "kept for W"), item(none, "kept for W"));
  o.recompute = Recompute::kFull;  // every block's output; one shared block recomputed
  const auto full = predict_memory(o);
  EXPECT_EQ(item(full, "kept for W"), L * output);
  EXPECT_EQ(item(full, "recomputed block"), linear + stats + att);
  EXPECT_EQ(item(full, "B-only per block"), -1);
  EXPECT_EQ(item(full, "logits"), item(none, "logits"));
}

// Elements of this rank's parameter buffer as the model lays it out.
double layout_params(const GPTConfig& c, const ModelShard& shard) {
  const auto layout = gpt_param_layout(c, shard);
  return static_cast<double>(layout.back().offset + layout.back().numel);
}

TEST(MemoryModel, RankParamsMatchTheTpAndStageLayouts) {
  GPTConfig c = mid_model();
  c.n_layer = 5;
  c.vocab_size = 8191;  // not a multiple of tp: wte rows are padded
  for (bool bias : {true, false}) {
    c.qkv_bias = bias;
    for (int tp : {1, 2, 4}) {
      for (int pp : {1, 2, 3}) {
        MemoryOptions o;
        o.model = c;
        o.seq = 128;
        o.batch = 6;  // micro-batches (pp) divide it
        o.tp = tp;
        o.pp = pp;
        o.stage_first = pp == 1 ? std::vector<int>{} : pp == 2 ? std::vector<int>{0, 3, 5}
                                                                 : std::vector<int>{0, 1, 4, 5};
        for (int s = 0; s < pp; ++s) {
          o.stage = s;
          ModelShard shard{0, tp};
          if (pp > 1) {
            shard.first_block = o.stage_first[s];
            shard.last_block = o.stage_first[s + 1];
            shard.has_embedding = s == 0;
            shard.has_head = s == pp - 1;
          }
          for (int r = 0; r < tp; ++r) {
            shard.tp_rank = r;
            EXPECT_EQ(rank_params(o), layout_params(c, shard))
                << "tp " << tp << " pp " << pp << " stage " << s << " rank " << r;
          }
          EXPECT_EQ(item(predict_memory(o), "parameters"), 4 * rank_params(o));
        }
      }
    }
  }
}

TEST(MemoryModel, TensorParallelSplitsAllButTheResidualStream) {
  MemoryOptions o;
  o.model = mid_model();
  o.seq = 128;
  const double N = 512, C = 256, T = 128, H = 4, L = 2;
  const auto tp1 = predict_memory(o);
  o.tp = 2;
  const auto tp2 = predict_memory(o);
  // Kept per block: ln_1, mid, ln_2 and the output whole (4C), qkv, attention output, c_fc and
  // GELU split (12C); the probabilities split with the heads, the statistics whole.
  EXPECT_EQ(item(tp1, "kept for W"), 4 * L * N * (4 * C + 12 * C));
  EXPECT_EQ(item(tp2, "kept for W"), 4 * L * N * (4 * C + 12 * C / 2));
  EXPECT_EQ(item(tp2, "B-only per block"), 4 * L * (4 * N + N * T * H / 2));
  // Vocab-parallel logits: half the vocabulary; the head adds the cross-entropy's 3 statistics.
  EXPECT_EQ(item(tp2, "logits"), 4.0 * 512 * 8192 / 2);
  EXPECT_EQ(item(tp2, "head"), item(tp1, "head") + 4 * 3 * N);
  EXPECT_GT(item(tp2, "shm ring"), 0);
}

TEST(MemoryModel, PipelineSetsInFlightFollowTheSchedule) {
  MemoryOptions o;
  o.model = mid_model();
  o.model.n_layer = 4;
  o.batch = 8;
  o.seq = 128;
  o.pp = 4;
  o.micro_batches = 8;
  for (int s = 0; s < 4; ++s) {
    o.stage = s;
    o.schedule = pipeline::ScheduleKind::GPipe;
    EXPECT_EQ(activation_sets_in_flight(o), 8) << s;  // every micro-batch before any backward
    o.schedule = pipeline::ScheduleKind::OneFOneB;
    EXPECT_EQ(activation_sets_in_flight(o), 4 - s) << s;  // warm-up depth pp - stage
    o.schedule = pipeline::ScheduleKind::ZeroBubbleH1;  // sets held until W
    EXPECT_GE(activation_sets_in_flight(o), 4 - s) << s;
  }
  // Activations scale with the sets held: stage 0 of GPipe holds twice 1F1B's 4 sets; the
  // backward scratch is the model's, one whatever the sets.
  o.stage = 0;
  o.schedule = pipeline::ScheduleKind::GPipe;
  const auto gpipe = predict_memory(o);
  o.schedule = pipeline::ScheduleKind::OneFOneB;
  const auto one_f_one_b = predict_memory(o);
  EXPECT_EQ(item(gpipe, "kept for W"), 2 * item(one_f_one_b, "kept for W"));
  EXPECT_EQ(item(gpipe, "B-only per block"), 2 * item(one_f_one_b, "B-only per block"));
  EXPECT_EQ(item(gpipe, "backward scratch"), item(one_f_one_b, "backward scratch"));
  // zb1p: a set waiting for W keeps only what W needs; the B-only buffers follow F..B.
  o.schedule = pipeline::ScheduleKind::ZeroBubbleH1;
  const auto zb = predict_memory(o);
  EXPECT_EQ(item(zb, "kept for W"), activation_sets_in_flight(o) * item(one_f_one_b, "kept for W") / 4);
  EXPECT_EQ(item(zb, "B-only per block"),
            b_only_sets_in_flight(o) * item(one_f_one_b, "B-only per block") / 4);
  o.schedule = pipeline::ScheduleKind::OneFOneB;
  // Only the last stage holds logits; no stage copies the wte gradient for the norm (it is
  // summed over ranges that leave the tied wte out).
  EXPECT_EQ(item(predict_memory(o), "logits"), -1);
  o.stage = 3;
  EXPECT_GT(item(predict_memory(o), "logits"), 0);
  EXPECT_EQ(item(predict_memory(o), "copy of the tied wte gradient"), -1);
}

TEST(MemoryModel, BadLayoutsAreRefused) {
  MemoryOptions o;
  o.model = mid_model();  // 4 heads, 2 layers
  o.seq = 128;
  o.tp = 3;
  EXPECT_THROW(predict_memory(o), Error);
  o.tp = 1;
  o.pp = 3;
  try {
    check_memory_layout(o);
    FAIL() << "pp 3 accepted for 2 layers";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--pp 3 must be between 1 and n_layer (2)"),
              std::string::npos)
        << e.what();
  }
  o.pp = 2;
  o.micro_batches = 3;  // batch 4
  EXPECT_THROW(check_memory_layout(o), Error);
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
                                     " --batch_size 4 --seq_len 128 --threads 1 " + flags);
    EXPECT_EQ(r.rc, 0) << r.out;
    std::vector<double> out;
    const std::regex re("predicted / measured ([0-9.]+)");
    for (std::sregex_iterator it(r.out.begin(), r.out.end(), re), end; it != end; ++it)
      out.push_back(std::stod((*it)[1]));
    return out;
  }
  testing::TempDir dir_;
};

// Every layout `loom memory` predicts, each rank within 2% of its measured peak RSS (measured on
// the reference machine: 0.996-0.998 without a pipeline, 0.983-1.017 with one and with bf16).
// Two stay wider, at 3%, for what the prediction does not yet explain: ZeRO-2 (0.996-0.997, but
// now and then 0.972 under load: about 3 MiB more, on one rank) and pp 2 x tp 2 (0.976-0.990
// measured over the steps that fill the pipeline lanes' shm rings, as a long run does; over 2
// steps it read 1.010-1.022 because half of each lane's slots were never used). What is left
// there is heap: about 0.5 MiB of it goes when glibc's mmap threshold is pinned
// (MALLOC_MMAP_THRESHOLD_), the per-micro-batch P2P buffers freed into the heap and kept.
TEST_F(MemoryCli, PredictionIsWithinTwoPercentOfTheMeasuredPeak) {
  if (testing::kAddressSanitizer) GTEST_SKIP() << "AddressSanitizer's shadow memory changes the measured peak";
  struct Run {
    std::string flags;
    size_t ranks;  // each rank prints its ratio
    double tolerance;
  };
  std::vector<Run> runs = {
      {"", 1, 0.02},
      {"--recompute selective", 1, 0.02},
      {"--recompute full", 1, 0.02},
      {"--nproc 2 --zero 1", 2, 0.02},
      {"--nproc 2 --zero 2", 2, 0.03},
      {"--tp 2", 2, 0.02},
      {"--pp 2 --schedule 1f1b", 2, 0.02},
      {"--pp 2 --schedule 1f1b --recompute selective", 2, 0.02},
      {"--pp 2 --schedule gpipe --micro_batches 4", 2, 0.02},
      {"--pp 2 --schedule zb1p --micro_batches 4", 2, 0.02},
      {"--nproc 4 --tp 2 --pp 2", 4, 0.03},
  };
  if (kernels::bf16_matmul_available()) runs.push_back({"--precision bf16", 1, 0.02});
  for (const Run& run : runs) {
    const auto r = ratios(run.flags);
    ASSERT_EQ(r.size(), run.ranks) << run.flags;
    for (double x : r) {
      EXPECT_GT(x, 1 - run.tolerance) << run.flags;
      EXPECT_LT(x, 1 + run.tolerance) << run.flags;
    }
  }
}

// gpt2-xl at dp 4 under ZeRO-3: predicted (this machine cannot hold four such ranks, and loom
// train may not run the layout), with ZeRO-3's own entries, and said not to be measured.
TEST(MemoryCliZero3, Gpt2XlIsPredictedWithItsShardedParameters) {
  const auto r = testing::loom_cli("memory --config " + std::string(LOOM_SOURCE_DIR) +
                                       "/configs/gpt2-xl.json --nproc 4 --zero 3 --seq_len 1024",
                                   60);
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("parameters (f32, ZeRO-3: this rank's shard"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("gradients (f32, ZeRO-3: a bucket per unit, shard)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("not measured: "), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("measured peak RSS"), std::string::npos) << r.out;
}

TEST_F(MemoryCli, BadFlagsAreRefused) {
  // The model has 4 heads and 2 layers: tp must divide the heads, every stage needs a block.
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"--zero 4", "--zero must be 0, 1, 2 or 3, got 4"},
      {"--precision fp8", "unknown precision \"fp8\""},
      {"--tp 3", "--tp 3: tensor parallelism splits the attention heads, so it must divide "
                 "n_head = 4"},
      {"--pp 3", "--pp 3 must be between 1 and n_layer (2)"},
      {"--tp 2 --nproc 3", "--tp 2 must divide the world size 3"},
      {"--pp 2 --micro_batches 3", "--micro_batches 3 must divide --batch_size 4"},
      {"--pp 2 --zero 2", "--zero 2 cannot be combined with --pp 2"},
      {"--pp 2 --zero 3", "--zero 3 cannot be combined with --pp 2"},
      {"--pp 2 --schedule interleaved", "--schedule interleaved is not predicted"},
  };
  for (const auto& [flags, message] : cases) {
    const auto r =
        testing::loom_cli("memory --config " + dir_ / "model.json" + " --seq_len 64 " + flags);
    EXPECT_NE(r.rc, 0) << flags;
    EXPECT_NE(r.out.find(message), std::string::npos) << flags << ": " << r.out;
  }
}

}  // namespace
}  // namespace loom
