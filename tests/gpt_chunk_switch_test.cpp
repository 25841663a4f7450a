// A model of several chunks (interleaved pipeline stages) run chunk after chunk on one
// activation set, as evaluation and sampling do: the set's buffers grow to the largest chunk's
// on the first pass and are reused at every later switch (no allocation, same addresses), and
// the results are those of the whole model.
#include <gtest/gtest.h>

#include <vector>

#include "loom/model/chunk_executor.hpp"
#include "loom/model/gpt.hpp"
#include "loom/model/model_runner.hpp"
#include "model_shard_util.hpp"

namespace loom {
namespace {

TEST(ChunkExecutor, ChunkSwitchesReuseTheActivationBuffers) {
  const GPTConfig cfg = test::shard_test_config(3);
  const auto params = test::random_whole_params(cfg, 41);
  const test::TokenBatch batch(cfg.vocab_size, 42);
  GPTModel<double> whole(cfg);
  test::load_pieces(whole, params);
  ModelRunner<double> run_whole(whole);
  const double want = run_whole.forward(batch.tokens.data(), batch.targets.data(), batch.B, batch.T, false);
  ModelShard shard;
  shard.chunks = {{0, 1}, {1, 3}};  // chunk 0: the embedding and block 0; chunk 1: blocks 1, 2 and the head
  shard.last_block = 3;
  GPTModel<double> m(cfg, shard);
  test::load_pieces(m, params);
  ActivationWorkspace<double> workspace;
  ChunkExecutor<double> chunk0(m, workspace, {0}), chunk1(m, workspace, {1});
  ActivationSet<double> set;
  const size_t n = static_cast<size_t>(batch.B) * batch.T * cfg.d_model;
  size_t allocations = 0;
  const double* out0 = nullptr;
  for (int pass = 0; pass < 3; ++pass) {
    chunk0.forward(set, batch.tokens.data(), nullptr, batch.B, batch.T, false);
    const std::vector<double> act(chunk0.output(set), chunk0.output(set) + n);
    if (pass == 1) out0 = chunk0.output(set);  // chunk 1 grew the buffer in pass 0
    if (pass > 1) {
      EXPECT_EQ(chunk0.output(set), out0) << "pass " << pass;
    }
    const double loss =
        chunk1.forward_activation(set, act.data(), batch.targets.data(), batch.B, batch.T, false);
    EXPECT_EQ(loss, want) << "pass " << pass;
    if (pass == 0) allocations = workspace.allocations();
    EXPECT_EQ(workspace.allocations(), allocations) << "pass " << pass;
  }
  EXPECT_GT(allocations, 0u);
}

}  // namespace
}  // namespace loom
