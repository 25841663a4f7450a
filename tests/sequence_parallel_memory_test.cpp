// Sequence parallelism's activation memory, from the model's own accounting (activation_plan,
// which the model allocates exactly): a tp 2 rank with --sequence_parallel holds at most 0.52x of
// tp 1's activations for gpt2-small at B 4, T 256 (about 0.58x without it), and the model's
// buffers under SP are the plan's, forward and backward, at every recompute mode, with and without
// the embedding, the head and dropout; a forward whose T tp does not divide runs plain tp.
#include <gtest/gtest.h>
#include <omp.h>

#include <string>
#include <vector>

#include "loom/config/train_config.hpp"
#include "loom/core/check.hpp"
#include "loom/core/rng.hpp"
#include "loom/model/activation_plan.hpp"
#include "loom/model/gpt.hpp"
#include "loom/model/model_runner.hpp"

namespace loom {
namespace {

GPTConfig small_config(float dropout) {
  GPTConfig c;
  c.vocab_size = 101;
  c.context_len = 16;
  c.n_layer = 4;
  c.n_head = 4;
  c.d_model = 32;
  c.dropout = dropout;
  return c;
}

ActivationShape whole_model(const GPTConfig& c, int tp, bool sp, int batch, int seq) {
  ActivationShape s;
  s.blocks = c.n_layer;
  s.tp = tp;
  s.sequence_parallel = sp;
  s.batch = batch;
  s.seq = seq;
  s.threads = 1;
  return s;
}

TEST(SequenceParallelMemory, Gpt2SmallAtTp2HoldsAtMost052OfTp1) {
  const GPTConfig c = load_model_config(std::string(LOOM_SOURCE_DIR) + "/configs/gpt2-small.json");
  const double tp1 = activation_plan(c, whole_model(c, 1, false, 4, 256)).total();
  const double tp2 = activation_plan(c, whole_model(c, 2, false, 4, 256)).total();
  const double sp2 = activation_plan(c, whole_model(c, 2, true, 4, 256)).total();
  EXPECT_LE(sp2 / tp1, 0.52) << "tp 2 with SP: " << sp2 / tp1 << "x of tp 1";
  EXPECT_GT(tp2 / tp1, 0.56) << "tp 2 without SP: " << tp2 / tp1 << "x of tp 1";
  EXPECT_LT(tp2 / tp1, 0.60) << "tp 2 without SP: " << tp2 / tp1 << "x of tp 1";
}

struct Case {
  Recompute recompute;
  bool embedding, head;
  float dropout;
  std::string describe() const {
    return std::string("recompute ") + recompute_name(recompute) + (embedding ? ", embedding" : "") +
           (head ? ", head" : "") + (dropout > 0 ? ", dropout" : "");
  }
};

// The model's buffers under SP (tp rank 1 of 2, collectives standing in) are the plan's.
TEST(SequenceParallelMemory, IsWhatTheModelAllocates) {
  const int B = 3;
  for (Recompute r : {Recompute::kNone, Recompute::kSelective, Recompute::kFull})
    for (int ends = 0; ends < 4; ++ends)
      for (int T : {16, 15}) {  // 15: not a multiple of tp, plain tp
        const Case k{r, (ends & 1) != 0, (ends & 2) != 0, ends == 3 ? 0.1f : 0.0f};
        const GPTConfig cfg = small_config(k.dropout);
        ShapesOnlyTpGroup group(1, 2);
        ModelShard shard{1, 2, 1, 3, k.embedding, k.head};
        shard.sequence_parallel = true;
        GPTModel<float> model(cfg, shard, &group);
        model.init_weights(1);
        ModelRunner<float> m(model, {0, k.recompute, false});
        ActivationShape s = whole_model(cfg, 2, T % 2 == 0, B, T);
        s.blocks = 2;
        s.first_block = 1;
        s.embedding = k.embedding;
        s.head = k.head;
        s.recompute = k.recompute;
        s.threads = omp_get_max_threads();
        const ActivationBytes plan = activation_plan(cfg, s);

        const size_t N = static_cast<size_t>(B) * T;
        std::vector<int32_t> tokens(N), targets(N);
        for (size_t i = 0; i < N; ++i) {
          tokens[i] = static_cast<int32_t>(i * 7 % cfg.vocab_size);
          targets[i] = static_cast<int32_t>(i * 5 % cfg.vocab_size);
        }
        std::vector<float> input(N * cfg.d_model, 0.5f), doutput(N * cfg.d_model, 0.25f);
        Rng rng(3);
        const int32_t* tgt = k.head ? targets.data() : nullptr;
        if (k.embedding)
          m.forward(tokens.data(), tgt, B, T, /*train=*/true, &rng);
        else
          m.forward_activation(input.data(), tgt, B, T, /*train=*/true, &rng);
        const std::string what = k.describe() + ", T " + std::to_string(T);
        EXPECT_EQ(m.set_bytes(), plan.set()) << what;
        EXPECT_EQ(m.shared_activation_bytes(), plan.scratch) << what;
        if (k.head)
          m.backward(1.0f);
        else
          m.backward_from_output(doutput.data());
        EXPECT_EQ(m.activation_bytes(), plan.total()) << what;
      }
}

// SP's rows are split: a rank's set is smaller than without SP at every recompute mode.
TEST(SequenceParallelMemory, SplitsTheLayerNormAndResidualRegions) {
  const GPTConfig cfg = small_config(0.1f);
  for (Recompute r : {Recompute::kNone, Recompute::kSelective, Recompute::kFull}) {
    ActivationShape plain = whole_model(cfg, 2, false, 4, 16), sp = plain;
    plain.recompute = sp.recompute = r;
    sp.sequence_parallel = true;
    const ActivationBytes a = activation_plan(cfg, plain), b = activation_plan(cfg, sp);
    EXPECT_EQ(b.stage_input * 2, a.stage_input) << recompute_name(r);
    EXPECT_EQ(b.embedding_mask * 2, a.embedding_mask) << recompute_name(r);
    EXPECT_LT(b.kept_per_block, a.kept_per_block) << recompute_name(r);
    EXPECT_LT(b.masks_per_block, a.masks_per_block) << recompute_name(r);
  }
}

TEST(SequenceParallelMemory, PlanRefusesShapesSpCannotRun) {
  const GPTConfig cfg = small_config(0);
  ActivationShape s = whole_model(cfg, 1, true, 2, 16);
  EXPECT_THROW(activation_plan(cfg, s), Error);  // tp 1
  s.tp = 2;
  s.seq = 15;
  EXPECT_THROW(activation_plan(cfg, s), Error);  // seq not a multiple of tp
  s.seq = 16;
  s.split_backward = true;
  EXPECT_THROW(activation_plan(cfg, s), Error);
}

}  // namespace
}  // namespace loom
