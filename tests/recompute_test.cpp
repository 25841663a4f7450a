// Activation recomputation: gradients bit-identical to keeping every activation (f32 with and
// without dropout, bf16 matmuls; whole model, pipeline stages, split backward, activation sets),
// activation buffers smaller, and the combinations that cannot work refused.
#include <gtest/gtest.h>

#include <cstring>

#include "error_of.hpp"
#include "loom/kernels/cpu/matmul.hpp"
#include "loom/model/chunk_executor.hpp"
#include "loom/model/gpt.hpp"
#include "loom/model/model_runner.hpp"
#include "model_shard_util.hpp"

namespace loom {
namespace {

using test::error_of;

// A model large enough that the attention probabilities (B, H, T, T) are a real share of the
// activations: T = 16 = d_model.
GPTConfig recompute_config(float dropout) {
  GPTConfig c = test::shard_test_config(3);
  c.context_len = 16;
  c.dropout = dropout;
  return c;
}

struct Batch {
  int B = 2, T = 16;
  std::vector<int32_t> tokens, targets;
  std::vector<float> input, doutput;  // for a stage without embedding / head
  Batch(const GPTConfig& c, uint64_t seed) {
    Rng rng(seed);
    for (int i = 0; i < B * T; ++i) {
      tokens.push_back(static_cast<int32_t>(rng.below(c.vocab_size)));
      targets.push_back(static_cast<int32_t>(rng.below(c.vocab_size)));
    }
    for (int i = 0; i < B * T * c.d_model; ++i) {
      input.push_back(static_cast<float>(rng.normal()));
      doutput.push_back(static_cast<float>(0.01 * rng.normal()));
    }
  }
};

// One training step (forward + backward, twice, so that reused buffers are exercised) of `run`
// (on `m`) on `b`; returns the losses and leaves the accumulated gradients in m.grads().
std::vector<float> two_steps(const GPT& m, ModelRunner<float>& run, const Batch& b) {
  Rng rng(77);
  std::vector<float> losses;
  const ModelShard& s = m.shard();
  for (int step = 0; step < 2; ++step) {
    losses.push_back(s.has_embedding
                         ? run.forward(b.tokens.data(), b.targets.data(), b.B, b.T, true, &rng)
                         : run.forward_activation(b.input.data(), b.targets.data(), b.B, b.T, true, &rng));
    const float* dout = s.has_head ? nullptr : b.doutput.data();
    if (run.executor().options().split_backward) {
      run.backward_input(0.5f, dout);
      run.backward_weights();
    } else if (s.has_head) {
      run.backward(0.5f);
    } else {
      run.backward_from_output(dout);
    }
  }
  return losses;
}

// two_steps of a fresh runner of `m` in the given modes.
std::vector<float> two_steps(GPT& m, const Batch& b, Recompute mode = Recompute::kNone,
                             bool split = false) {
  ModelRunner<float> run(m, {0, mode, split});
  return two_steps(m, run, b);
}

bool same_bits(const GPT& a, const GPT& b) {
  return a.num_params() == b.num_params() &&
         std::memcmp(a.grads(), b.grads(), a.num_params() * sizeof(float)) == 0;
}

void load(GPT& m, const std::vector<double>& whole) { test::load_pieces(m, whole); }

TEST(Recompute, GradientsAreBitIdenticalToKeepingEverything) {
  for (const float dropout : {0.0f, 0.1f}) {
    const GPTConfig cfg = recompute_config(dropout);
    const auto params = test::random_whole_params(cfg, 3);
    const Batch batch(cfg, 4);
    // The whole model, a first stage (embedding, no head), a last stage fed by an activation.
    for (const ModelShard& shard : {ModelShard{}, ModelShard{0, 1, 0, 2, true, false},
                                   ModelShard{0, 1, 1, 3, false, true}}) {
      GPT ref(cfg, shard);
      load(ref, params);
      const auto want = two_steps(ref, batch);
      for (const Recompute mode : {Recompute::kSelective, Recompute::kFull}) {
        GPT m(cfg, shard);
        load(m, params);
        EXPECT_EQ(two_steps(m, batch, mode), want) << recompute_name(mode) << " dropout " << dropout;
        EXPECT_TRUE(same_bits(m, ref)) << recompute_name(mode) << " dropout " << dropout
                                       << " blocks from " << shard.first_block;
      }
    }
  }
}

// Under bf16 matmuls (autocast) the recomputed forward rounds exactly as the first one did.
TEST(Recompute, Bf16GradientsAreBitIdenticalToo) {
  if (!kernels::bf16_matmul_available()) GTEST_SKIP() << "no bf16 matmul on this CPU";
  const GPTConfig cfg = recompute_config(0.1f);
  const auto params = test::random_whole_params(cfg, 8);
  const Batch batch(cfg, 9);
  kernels::MatmulPrecisionScope autocast(kernels::MatmulPrecision::kBF16);
  GPT ref(cfg);
  load(ref, params);
  const auto want = two_steps(ref, batch);
  for (const Recompute mode : {Recompute::kSelective, Recompute::kFull}) {
    GPT m(cfg);
    load(m, params);
    EXPECT_EQ(two_steps(m, batch, mode), want) << recompute_name(mode);
    EXPECT_TRUE(same_bits(m, ref)) << recompute_name(mode);
  }
}

TEST(Recompute, ActivationBuffersShrink) {
  const GPTConfig cfg = recompute_config(0.0f);
  const Batch batch(cfg, 4);
  size_t bytes[3];
  for (const Recompute mode : {Recompute::kNone, Recompute::kSelective, Recompute::kFull}) {
    GPT m(cfg);
    ModelRunner<float> run(m, {0, mode});
    two_steps(m, run, batch);
    bytes[static_cast<int>(mode)] = run.activation_bytes();
  }
  // Per block and row: none keeps 16C + H*T values (C = 16, H = 4, T = 16: 320), selective
  // 16C, full only the block's output C (plus one shared set of block activations).
  EXPECT_LT(bytes[1], bytes[0]);
  EXPECT_LT(bytes[2], bytes[1]);
  // A set run by an executor of another mode is re-planned for it.
  GPT m(cfg);
  ActivationWorkspace<float> workspace;
  ChunkExecutor<float> full(m, workspace, {0, Recompute::kFull}), none(m, workspace, {0});
  ActivationSet<float> set;
  for (ChunkExecutor<float>* x : {&full, &none}) {
    x->forward(set, batch.tokens.data(), batch.targets.data(), batch.B, batch.T, true);
    x->backward(set, 0.5f);
  }
  EXPECT_EQ(set.bytes() + workspace.bytes(), bytes[0]);
}

TEST(Recompute, SelectiveComposesWithSplitBackwardAndActivationSets) {
  const GPTConfig cfg = recompute_config(0.0f);
  const auto params = test::random_whole_params(cfg, 5);
  const Batch one(cfg, 6), two(cfg, 7);
  GPT ref(cfg), sel(cfg);
  load(ref, params);
  load(sel, params);
  EXPECT_EQ(two_steps(sel, one, Recompute::kSelective, /*split=*/true), two_steps(ref, one));
  EXPECT_TRUE(same_bits(sel, ref));

  // Two micro-batches in flight in their own activation sets, backwards in reverse order (a
  // pipeline stage's 1F1B), under full recomputation.
  GPT full(cfg), plain(cfg);
  load(full, params);
  load(plain, params);
  ModelRunner<float> run_plain(plain);
  run_plain.forward(two.tokens.data(), two.targets.data(), two.B, two.T, true);
  run_plain.backward();
  run_plain.forward(one.tokens.data(), one.targets.data(), one.B, one.T, true);
  run_plain.backward();
  ActivationWorkspace<float> workspace;
  ChunkExecutor<float> executor(full, workspace, {0, Recompute::kFull});
  ActivationSet<float> a, b;
  executor.forward(a, one.tokens.data(), one.targets.data(), one.B, one.T, true);
  executor.forward(b, two.tokens.data(), two.targets.data(), two.B, two.T, true);
  executor.backward(b);
  executor.backward(a);
  EXPECT_TRUE(same_bits(full, plain));
}

TEST(Recompute, FullWithSplitBackwardIsRefused) {
  const GPTConfig cfg = recompute_config(0.0f);
  GPT m(cfg);
  ActivationWorkspace<float> workspace;
  const std::string e = error_of([&] {
    ChunkExecutor<float>(m, workspace, {0, Recompute::kFull, /*split_backward=*/true});
  });
  EXPECT_NE(e.find("recompute full cannot run with the split backward"), std::string::npos) << e;
}

TEST(Recompute, ParseNamesTheFlagAndTheValidValues) {
  EXPECT_EQ(parse_recompute("none"), Recompute::kNone);
  EXPECT_EQ(parse_recompute("selective"), Recompute::kSelective);
  EXPECT_EQ(parse_recompute("full"), Recompute::kFull);
  const std::string e = error_of([] { parse_recompute("bogus"); });
  EXPECT_NE(e.find("--recompute must be none, selective or full, got 'bogus'"), std::string::npos) << e;
}

}  // namespace
}  // namespace loom
