// The backward split in two (B: input gradient, W: weight gradients, for zero-bubble pipeline
// schedules) adds exactly what the fused backward adds, on every kind of stage, with dropout,
// in no more activation memory, and refuses to be misused.
#include <gtest/gtest.h>

#include <cmath>

#include "error_of.hpp"
#include "loom/model/chunk_executor.hpp"
#include "loom/model/gpt.hpp"
#include "loom/model/model_runner.hpp"
#include "model_shard_util.hpp"
#include "weights_pending_bound.hpp"

namespace loom {
namespace {

TEST(ChunkExecutor, SplitBackwardEqualsTheFusedOneOnEveryStage) {
  GPTConfig cfg = test::shard_test_config(3);
  cfg.dropout = 0.1f;
  const auto params = test::random_whole_params(cfg, 21);
  const test::TokenBatch batch(cfg.vocab_size, 22);
  std::vector<double> input(static_cast<size_t>(batch.B) * batch.T * cfg.d_model), dout(input.size());
  for (size_t i = 0; i < input.size(); ++i) {
    input[i] = std::sin(0.3 * static_cast<double>(i));
    dout[i] = std::cos(0.7 * static_cast<double>(i)) * 1e-2;
  }
  // The whole model, a first, a middle and a last stage.
  for (const ModelShard& shard : {ModelShard{}, ModelShard{0, 1, 0, 1, true, false},
                                 ModelShard{0, 1, 1, 2, false, false}, ModelShard{0, 1, 2, 3, false, true}}) {
    GPTModel<double> fused(cfg, shard), split(cfg, shard);
    test::load_pieces(fused, params);
    test::load_pieces(split, params);
    ModelRunner<double> run_fused(fused), run_split(split, {0, Recompute::kNone, true});
    auto run = [&](ModelRunner<double>& m) {
      const bool split_backward = m.executor().options().split_backward;
      Rng rng(5);
      if (shard.has_embedding)
        m.forward(batch.tokens.data(), batch.targets.data(), batch.B, batch.T, true, &rng);
      else
        m.forward_activation(input.data(), batch.targets.data(), batch.B, batch.T, true, &rng);
      const double* d = shard.has_head ? nullptr : dout.data();
      if (!split_backward) {
        if (d == nullptr) m.backward(0.5);
        else m.backward_from_output(d);
        return;
      }
      m.backward_input(0.5, d);
      if (!shard.has_embedding) {  // the input gradient is final after B alone
        const double* gi = m.input_grad();
        std::vector<double> before(gi, gi + input.size());
        m.backward_weights();
        EXPECT_EQ(std::vector<double>(m.input_grad(), m.input_grad() + input.size()), before);
      } else {
        m.backward_weights();
      }
    };
    run(run_fused);
    run(run_split);
    const std::vector<double> want(fused.grads(), fused.grads() + fused.num_params());
    const std::vector<double> got(split.grads(), split.grads() + split.num_params());
    EXPECT_EQ(test::max_abs_diff(got, want), 0.0) << "blocks from " << shard.first_block;
    // What B keeps for W takes the place of what B has finished with.
    EXPECT_EQ(run_split.activation_bytes(), run_fused.activation_bytes())
        << "blocks from " << shard.first_block;
    if (!shard.has_embedding) {
      EXPECT_EQ(std::vector<double>(run_split.input_grad(), run_split.input_grad() + input.size()),
                std::vector<double>(run_fused.input_grad(), run_fused.input_grad() + input.size()));
    }
  }
}

// After B a set waiting for W holds only its blocks' linear layers' inputs and output gradients
// (the bound of weights_pending_bound.hpp; no logits), and the next forward, on another set,
// takes the B-only buffers B returned instead of allocating its own.
TEST(ChunkExecutor, ASetWaitingForWeightsHoldsOnlyWhatTheyNeed) {
  GPTConfig cfg = test::shard_test_config(3);
  cfg.dropout = 0.1f;
  const auto params = test::random_whole_params(cfg, 31);
  const test::TokenBatch batch(cfg.vocab_size, 32);
  std::vector<double> input(static_cast<size_t>(batch.B) * batch.T * cfg.d_model, 0.25), dout(input.size(), 1e-2);
  const size_t rows = static_cast<size_t>(batch.B) * batch.T;
  for (const ModelShard& shard : {ModelShard{}, ModelShard{0, 1, 0, 1, true, false},
                                 ModelShard{0, 1, 1, 2, false, false}, ModelShard{0, 1, 1, 3, false, true}}) {
    const int blocks = shard.end_block(cfg) - shard.first_block;
    GPTModel<double> m(cfg, shard);
    test::load_pieces(m, params);
    ActivationWorkspace<double> workspace;
    ChunkExecutor<double> x(m, workspace, {0, Recompute::kNone, /*split_backward=*/true});
    auto forward = [&](ActivationSet<double>& set) {
      Rng rng(5);
      if (shard.has_embedding)
        x.forward(set, batch.tokens.data(), batch.targets.data(), batch.B, batch.T, true, &rng);
      else
        x.forward_activation(set, input.data(), batch.targets.data(), batch.B, batch.T, true, &rng);
    };
    ActivationSet<double> a, b;
    forward(a);
    const size_t full = a.bytes();
    const size_t logits = a.logits_bytes();
    x.backward_input(a, 1.0, shard.has_head ? nullptr : dout.data());
    const size_t pending = a.bytes();
    EXPECT_LE(pending, test::weights_pending_bound(cfg, rows, blocks, sizeof(double)))
        << "blocks from " << shard.first_block;
    EXPECT_LT(pending, full);
    if (shard.has_head) {
      EXPECT_EQ(x.logits(a), nullptr);
      EXPECT_GT(logits, 0u);
      EXPECT_LE(pending + logits, full);
    }
    const size_t allocations = workspace.allocations();
    forward(b);
    EXPECT_EQ(workspace.allocations(), allocations + 1) << "only b's kept buffer is new";
    EXPECT_EQ(b.bytes(), full);
    x.backward_weights(a);
  }
}

TEST(ChunkExecutor, SplitBackwardIsRefusedWhenMisused) {
  const GPTConfig cfg = test::shard_test_config(1);
  const test::TokenBatch batch(cfg.vocab_size, 3);
  GPTModel<double> m(cfg);
  m.init_weights(1);
  ModelRunner<double> fused(m);
  fused.forward(batch.tokens.data(), batch.targets.data(), batch.B, batch.T, true);
  EXPECT_NE(test::error_of([&] { fused.backward_input(1.0, nullptr); }).find("built without "
            "split_backward"), std::string::npos);
  EXPECT_NE(test::error_of([&] { fused.backward_weights(); }).find("no backward_input is waiting"),
            std::string::npos);
  ModelRunner<double> split(m, {0, Recompute::kNone, /*split_backward=*/true});
  split.forward(batch.tokens.data(), batch.targets.data(), batch.B, batch.T, true);
  split.backward_input(1.0, nullptr);
  EXPECT_NE(test::error_of([&] {
              split.forward(batch.tokens.data(), batch.targets.data(), batch.B, batch.T, true);
            }).find("still waits for its backward_weights"),
            std::string::npos);
  split.backward_weights();
}

}  // namespace
}  // namespace loom
