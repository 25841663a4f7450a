// Activation recomputation: gradients bit-identical to keeping every activation (f32 with and
// without dropout, bf16 matmuls; whole model, pipeline stages, split backward, activation sets),
// activation buffers smaller, and the combinations that cannot work refused.
#include <gtest/gtest.h>

#include <cstring>
#include <functional>

#include "error_of.hpp"
#include "loom/kernels/cpu/matmul.hpp"
#include "loom/model/gpt.hpp"
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

// One training step (forward + backward, twice, so that reused buffers are exercised) of `m`
// on `b`; returns the losses and leaves the accumulated gradients in m.grads().
std::vector<float> two_steps(GPT& m, const Batch& b, bool split = false) {
  Rng rng(77);
  std::vector<float> losses;
  const ModelShard& s = m.shard();
  m.set_split_backward(split);
  for (int step = 0; step < 2; ++step) {
    losses.push_back(s.has_embedding
                         ? m.forward(b.tokens.data(), b.targets.data(), b.B, b.T, true, &rng)
                         : m.forward_activation(b.input.data(), b.targets.data(), b.B, b.T, true, &rng));
    const float* dout = s.has_head ? nullptr : b.doutput.data();
    if (split) {
      m.backward_input(0.5f, dout);
      m.backward_weights();
    } else if (s.has_head) {
      m.backward(0.5f);
    } else {
      m.backward_from_output(dout);
    }
  }
  return losses;
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
        m.set_recompute(mode);
        EXPECT_EQ(two_steps(m, batch), want) << recompute_name(mode) << " dropout " << dropout;
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
    m.set_recompute(mode);
    EXPECT_EQ(two_steps(m, batch), want) << recompute_name(mode);
    EXPECT_TRUE(same_bits(m, ref)) << recompute_name(mode);
  }
}

TEST(Recompute, ActivationBuffersShrink) {
  const GPTConfig cfg = recompute_config(0.0f);
  const Batch batch(cfg, 4);
  size_t bytes[3];
  for (const Recompute mode : {Recompute::kNone, Recompute::kSelective, Recompute::kFull}) {
    GPT m(cfg);
    m.set_recompute(mode);
    two_steps(m, batch);
    bytes[static_cast<int>(mode)] = m.activation_bytes();
  }
  // Per block and row: none keeps 16C + H*T values (C = 16, H = 4, T = 16: 320), selective
  // 16C, full only the block's output C (plus one shared set of block activations).
  EXPECT_LT(bytes[1], bytes[0]);
  EXPECT_LT(bytes[2], bytes[1]);
  // Switching the mode back re-plans the buffers.
  GPT m(cfg);
  m.set_recompute(Recompute::kFull);
  two_steps(m, batch);
  m.set_recompute(Recompute::kNone);
  two_steps(m, batch);
  EXPECT_EQ(m.activation_bytes(), bytes[0]);
}

TEST(Recompute, SelectiveComposesWithSplitBackwardAndActivationSets) {
  const GPTConfig cfg = recompute_config(0.0f);
  const auto params = test::random_whole_params(cfg, 5);
  const Batch one(cfg, 6), two(cfg, 7);
  GPT ref(cfg), sel(cfg);
  load(ref, params);
  load(sel, params);
  sel.set_recompute(Recompute::kSelective);
  EXPECT_EQ(two_steps(sel, one, /*split=*/true), two_steps(ref, one));
  EXPECT_TRUE(same_bits(sel, ref));

  // Two micro-batches in flight in their own activation sets, backwards in reverse order (a
  // pipeline stage's 1F1B), under full recomputation.
  GPT full(cfg), plain(cfg);
  load(full, params);
  load(plain, params);
  full.set_recompute(Recompute::kFull);
  plain.forward(two.tokens.data(), two.targets.data(), two.B, two.T, true);
  plain.backward();
  plain.forward(one.tokens.data(), one.targets.data(), one.B, one.T, true);
  plain.backward();
  auto a = GPT::new_activations(), b = GPT::new_activations();
  auto in = [&](GPT::Activations& set, const std::function<void()>& f) {
    full.swap_activations(set);
    f();
    full.swap_activations(set);
  };
  in(*a, [&] { full.forward(one.tokens.data(), one.targets.data(), one.B, one.T, true); });
  in(*b, [&] { full.forward(two.tokens.data(), two.targets.data(), two.B, two.T, true); });
  in(*b, [&] { full.backward(); });
  in(*a, [&] { full.backward(); });
  EXPECT_TRUE(same_bits(full, plain));
}

TEST(Recompute, FullWithSplitBackwardIsRefused) {
  const GPTConfig cfg = recompute_config(0.0f);
  const Batch batch(cfg, 4);
  GPT m(cfg);
  m.set_recompute(Recompute::kFull);
  m.set_split_backward(true);
  const std::string e = error_of([&] {
    m.forward(batch.tokens.data(), batch.targets.data(), batch.B, batch.T, true);
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
