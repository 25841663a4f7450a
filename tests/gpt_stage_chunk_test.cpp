// The GPT stage under the pipeline runtime on one rank: every schedule gives the gradients and
// loss of the micro-batches run one after the other, and holds exactly as many activation sets
// as the schedule keeps micro-batches in flight (GPipe: m; 1F1B on its last stage: 1).
#include <gtest/gtest.h>

#include <cmath>

#include "loom/comm/communicator.hpp"
#include "loom/core/check.hpp"
#include "loom/model/model_runner.hpp"
#include "loom/parallel/pipeline/gpt_stage_chunk.hpp"
#include "loom/parallel/pipeline/p2p_lanes.hpp"
#include "loom/parallel/pipeline/runtime.hpp"
#include "model_shard_util.hpp"
#include "weights_pending_bound.hpp"

namespace loom::pipeline {
namespace {

TEST(GptStageChunk, OneStageScheduleMatchesMicroBatchesInTurn) {
  const GPTConfig cfg = test::shard_test_config(2);
  const int B = 4, T = 5, m = 4;
  Rng rng(3);
  std::vector<int32_t> tokens(B * T + 1);
  for (auto& t : tokens) t = static_cast<int32_t>(rng.below(cfg.vocab_size));
  GPT ref(cfg);
  ref.init_weights(1);
  ModelRunner<float> run_ref(ref);
  double ref_loss = 0;
  for (int mb = 0; mb < m; ++mb) {
    const size_t off = static_cast<size_t>(mb) * (B / m) * T;
    ref_loss += run_ref.forward(tokens.data() + off, tokens.data() + 1 + off, B / m, T, true) / m;
    run_ref.backward(1.0f / m);
  }
  auto solo = comm::communicator_from_env();  // not launched: one rank
  P2PLanes lanes(*solo, false);
  for (const auto& [kind, in_flight] : {std::pair{ScheduleKind::GPipe, m}, {ScheduleKind::OneFOneB, 1}}) {
    GPT model(cfg);
    model.init_weights(1);
    ActivationWorkspace<float> workspace;
    GptStageChunk chunk(model, workspace, m, {});
    chunk.set_batch(tokens.data(), tokens.data() + 1, B, T, 1.0f / m);
    run_pipeline_step(make_schedule(kind, 1, m), 0, {&chunk}, lanes);
    EXPECT_EQ(chunk.peak_in_flight(), static_cast<size_t>(in_flight)) << name(kind);
    EXPECT_NEAR(chunk.loss_sum() / m, ref_loss, 1e-6) << name(kind);
    for (size_t i = 0; i < model.num_params(); ++i)
      ASSERT_EQ(model.grads()[i], ref.grads()[i]) << name(kind) << " parameter " << i;
  }
}

// Split backward with W deferred past later micro-batches' forwards and backwards (as ZB-H1
// defers them): the same gradients, up to the order of the LayerNorm gradients' sums.
TEST(GptStageChunk, DeferredWeightGradientsMatchMicroBatchesInTurn) {
  const GPTConfig cfg = test::shard_test_config(2);
  const int B = 2, T = 5, m = 2;
  Rng rng(4);
  std::vector<int32_t> tokens(B * T + 1);
  for (auto& t : tokens) t = static_cast<int32_t>(rng.below(cfg.vocab_size));
  GPT ref(cfg), model(cfg);
  ref.init_weights(1);
  model.init_weights(1);
  ModelRunner<float> run_ref(ref);
  for (int mb = 0; mb < m; ++mb) {
    run_ref.forward(tokens.data() + mb * T, tokens.data() + 1 + mb * T, 1, T, true);
    run_ref.backward(1.0f / m);
  }
  ActivationWorkspace<float> workspace;
  GptStageChunk chunk(model, workspace, m, {0, Recompute::kNone, /*split_backward=*/true});
  chunk.set_batch(tokens.data(), tokens.data() + 1, B, T, 1.0f / m);
  chunk.forward(0, nullptr, nullptr);
  chunk.forward(1, nullptr, nullptr);
  chunk.backward_input(1, nullptr, nullptr);
  chunk.backward_input(0, nullptr, nullptr);
  EXPECT_EQ(chunk.peak_in_flight(), 2u);
  chunk.backward_weights(0);
  chunk.backward_weights(1);
  double worst = 0, scale = 0;
  for (size_t i = 0; i < model.num_params(); ++i) {
    worst = std::max(worst, std::abs(static_cast<double>(model.grads()[i]) - ref.grads()[i]));
    scale = std::max(scale, std::abs(static_cast<double>(ref.grads()[i])));
  }
  EXPECT_LT(worst, 1e-6 * scale);
  EXPECT_THROW(chunk.backward_weights(0), Error);  // W once only
}

// The last stage of ZB-H1 at pp 2 (F0 B0 F1 B1 W0 F2 B2 W1 W2: one set waits for its W while the
// next micro-batch runs) holds one set more than 1F1B (F B each in turn), but the extra one is a
// set waiting for W, which keeps no logits and no B-only buffers: the stage's activation memory
// exceeds 1F1B's by at most weights_pending_bound, far less than a whole set.
TEST(GptStageChunk, ZeroBubbleLastStageHoldsLittleMoreThanOneFOneB) {
  const GPTConfig cfg = test::shard_test_config(2, 301);
  const int B = 3, T = 8, m = 3;
  Rng rng(6);
  std::vector<int32_t> tokens(B * T + 1);
  for (auto& t : tokens) t = static_cast<int32_t>(rng.below(cfg.vocab_size));
  auto solo = comm::communicator_from_env();
  P2PLanes lanes(*solo, false);
  GPT one_f_one_b(cfg), zero_bubble(cfg);
  one_f_one_b.init_weights(1);
  zero_bubble.init_weights(1);
  ActivationWorkspace<float> fused_workspace, split_workspace;
  GptStageChunk fused(one_f_one_b, fused_workspace, m, {}),
      split(zero_bubble, split_workspace, m, {0, Recompute::kNone, /*split_backward=*/true});
  fused.set_batch(tokens.data(), tokens.data() + 1, B, T, 1.0f / m);
  run_pipeline_step(make_schedule(ScheduleKind::OneFOneB, 1, m), 0, {&fused}, lanes);
  split.set_batch(tokens.data(), tokens.data() + 1, B, T, 1.0f / m);
  for (int mb = 0; mb < m; ++mb) {
    split.forward(mb, nullptr, nullptr);
    split.backward_input(mb, nullptr, nullptr);
    if (mb > 0) split.backward_weights(mb - 1);
  }
  split.backward_weights(m - 1);
  EXPECT_EQ(fused.peak_in_flight(), 1u);
  EXPECT_EQ(split.peak_in_flight(), 2u);
  const size_t ob = fused.held_bytes() + fused_workspace.bytes();
  const size_t zb = split.held_bytes() + split_workspace.bytes();
  EXPECT_GT(zb, ob);
  EXPECT_LE(zb - ob, test::weights_pending_bound(cfg, B / m * T, cfg.n_layer, sizeof(float)));
  EXPECT_LT(zb - ob, fused.held_bytes());  // less than a whole set (1F1B holds one)
  for (size_t i = 0; i < one_f_one_b.num_params(); ++i)
    ASSERT_NEAR(zero_bubble.grads()[i], one_f_one_b.grads()[i], 1e-6f) << "parameter " << i;
}

}  // namespace
}  // namespace loom::pipeline
