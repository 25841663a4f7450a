// Activation sets: two forwards kept in their own sets, their backwards run later in the other
// order, give exactly the gradients of running each forward and backward in turn (what lets a
// pipeline stage hold several micro-batches in flight without recomputing them).
#include <gtest/gtest.h>

#include <cmath>

#include "error_of.hpp"
#include "loom/model/chunk_executor.hpp"
#include "loom/model/gpt.hpp"
#include "model_shard_util.hpp"

namespace loom {
namespace {

TEST(ChunkExecutor, ActivationSetsKeepSeveralForwardsForTheirBackwards) {
  const GPTConfig cfg = test::shard_test_config(2);
  const auto params = test::random_whole_params(cfg, 5);
  const test::TokenBatch one(cfg.vocab_size, 6), two(cfg.vocab_size, 7);
  // Whole model, then a last stage fed by an activation: both kinds of forward.
  for (const ModelShard& shard : {ModelShard{}, ModelShard{0, 1, 1, 2, false, true}}) {
    GPTModel<double> ref(cfg, shard), sets(cfg, shard);
    test::load_pieces(ref, params);
    test::load_pieces(sets, params);
    std::vector<double> input(static_cast<size_t>(one.B) * one.T * cfg.d_model);
    for (size_t i = 0; i < input.size(); ++i) input[i] = std::sin(0.1 * static_cast<double>(i));
    ActivationWorkspace<double> ref_workspace, workspace;
    ChunkExecutor<double> ref_executor(ref, ref_workspace), executor(sets, workspace);
    auto forward = [&](ChunkExecutor<double>& x, ActivationSet<double>& set,
                       const test::TokenBatch& b) {
      return shard.has_embedding
                 ? x.forward(set, b.tokens.data(), b.targets.data(), b.B, b.T, true)
                 : x.forward_activation(set, input.data(), b.targets.data(), b.B, b.T, true);
    };
    ActivationSet<double> ref_set;
    const double l2 = forward(ref_executor, ref_set, two);
    ref_executor.backward(ref_set, 0.5);
    const double l1 = forward(ref_executor, ref_set, one);
    ref_executor.backward(ref_set, 0.5);

    ActivationSet<double> a, b;
    const double s1 = forward(executor, a, one);
    const double s2 = forward(executor, b, two);
    executor.backward(b, 0.5);
    executor.backward(a, 0.5);
    EXPECT_EQ(s1, l1);
    EXPECT_EQ(s2, l2);
    const std::vector<double> want(ref.grads(), ref.grads() + ref.num_params());
    const std::vector<double> got(sets.grads(), sets.grads() + sets.num_params());
    EXPECT_EQ(test::max_abs_diff(got, want), 0.0) << "first block " << shard.first_block;
  }
}

// A set's backward needs the executor of its forward's chunk and recompute mode: another chunk's
// blocks, or a mode that keeps other activations, would read buffers the forward did not fill.
TEST(ChunkExecutor, ASetsBackwardIsRefusedByAnotherChunksOrModesExecutor) {
  const GPTConfig cfg = test::shard_test_config(2);
  const test::TokenBatch batch(cfg.vocab_size, 8);
  ModelShard shard;
  shard.chunks = {{0, 1}, {1, 2}};  // chunk 0: the embedding and block 0; chunk 1: block 1, head
  GPTModel<double> interleaved(cfg, shard), whole(cfg);
  interleaved.init_weights(1);
  whole.init_weights(1);
  ActivationWorkspace<double> workspace;
  ChunkExecutor<double> chunk0(interleaved, workspace, {0}), chunk1(interleaved, workspace, {1});
  ChunkExecutor<double> plain(whole, workspace), full(whole, workspace, {0, Recompute::kFull});
  ActivationSet<double> set;
  std::vector<double> input(static_cast<size_t>(batch.B) * batch.T * cfg.d_model, 0.5);
  chunk1.forward_activation(set, input.data(), batch.targets.data(), batch.B, batch.T, true);
  const std::string other_chunk = test::error_of([&] { chunk0.backward_from_output(set, input.data()); });
  EXPECT_NE(other_chunk.find("the set's forward ran chunk 1 with recompute none, this executor "
                             "runs chunk 0"), std::string::npos) << other_chunk;
  plain.forward(set, batch.tokens.data(), batch.targets.data(), batch.B, batch.T, true);
  const std::string other_mode = test::error_of([&] { full.backward(set); });
  EXPECT_NE(other_mode.find("ran chunk 0 with recompute none, this executor runs chunk 0 with "
                            "recompute full"), std::string::npos) << other_mode;
  plain.backward(set);  // the executor of its forward
}

}  // namespace
}  // namespace loom
