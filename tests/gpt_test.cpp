// Whole-model checks on a tiny GPT: gradients against finite differences (double), float vs double
// forward, gradient-ready callbacks, loss scaling and dropout determinism.
#include "loom/model/gpt.hpp"

#include <gtest/gtest.h>

#include <cmath>

#include "gradcheck.hpp"
#include "loom/core/check.hpp"
#include "loom/model/model_runner.hpp"

namespace loom {
namespace {

using test::kGradTolerance;
using test::max_rel_error;

GPTConfig tiny_config(bool qkv_bias, float dropout = 0.0f) {
  GPTConfig c;
  c.vocab_size = 37;
  c.context_len = 8;
  c.n_layer = 2;
  c.n_head = 2;
  c.d_model = 16;
  c.qkv_bias = qkv_bias;
  c.dropout = dropout;
  return c;
}

// GPT-2 init plus noise on every parameter (biases and LayerNorm parameters included), so that
// no gradient is trivially zero or symmetric.
template <typename T>
void randomise(GPTModel<T>& m, uint64_t seed) {
  m.init_weights(seed);
  Rng rng(seed + 1);
  for (size_t i = 0; i < m.num_params(); ++i) m.params()[i] += static_cast<T>(0.1 * rng.normal());
}

struct Batch {
  int B = 2, T = 5;
  std::vector<int32_t> tokens, targets;
  explicit Batch(int V, uint64_t seed) {
    Rng rng(seed);
    for (int i = 0; i < B * T; ++i) {
      tokens.push_back(static_cast<int32_t>(rng.below(V)));
      targets.push_back(static_cast<int32_t>(rng.below(V)));
    }
  }
};

void check_model_gradient(const GPTConfig& cfg, const char* label) {
  GPTModel<double> m(cfg);
  ModelRunner<double> run_m(m);
  randomise(m, 3);
  const Batch batch(cfg.vocab_size, 4);
  const uint64_t drop_seed = 77;
  auto loss = [&] {
    Rng rng(drop_seed);  // same dropout masks at every evaluation
    return static_cast<double>(run_m.forward(batch.tokens.data(), batch.targets.data(), batch.B,
                                         batch.T, /*train=*/true, &rng));
  };
  loss();
  m.zero_grad();
  run_m.backward();
  const std::vector<double> analytic(m.grads(), m.grads() + m.num_params());
  const double e = max_rel_error(m.params(), m.num_params(), analytic.data(), loss);
  std::printf("model (%s, %zu params) max rel error: %.2e\n", label, m.num_params(), e);
  EXPECT_LT(e, kGradTolerance);
}

TEST(GPTModel, GradientMatchesFiniteDifferencesWithQkvBias) {
  check_model_gradient(tiny_config(true), "qkv_bias on");
}

TEST(GPTModel, GradientMatchesFiniteDifferencesWithoutQkvBias) {
  check_model_gradient(tiny_config(false), "qkv_bias off");
}

TEST(GPTModel, GradientMatchesFiniteDifferencesWithDropout) {
  check_model_gradient(tiny_config(true, 0.2f), "dropout 0.2, fixed masks");
}

TEST(GPTModel, FloatAndDoubleForwardAgree) {
  const GPTConfig cfg = tiny_config(true);
  GPTModel<double> md(cfg);
  ModelRunner<double> run_md(md);
  GPTModel<float> mf(cfg);
  ModelRunner<float> run_mf(mf);
  randomise(md, 5);
  for (size_t i = 0; i < md.num_params(); ++i) mf.params()[i] = static_cast<float>(md.params()[i]);
  const Batch batch(cfg.vocab_size, 6);
  const double ld = run_md.forward(batch.tokens.data(), batch.targets.data(), batch.B, batch.T, false);
  const float lf = run_mf.forward(batch.tokens.data(), batch.targets.data(), batch.B, batch.T, false);
  EXPECT_NEAR(lf, ld, 1e-5 * std::abs(ld));
  double worst = 0;
  for (int i = 0; i < batch.B * batch.T * cfg.vocab_size; ++i) {
    worst = std::max(worst, std::abs(run_mf.logits()[i] - run_md.logits()[i]));
  }
  std::printf("float vs double: loss %.8f vs %.8f, max |logit diff| %.2e\n", lf, ld, worst);
  EXPECT_LT(worst, 1e-4);
}

TEST(GPTModel, ReadyCallbacksCoverEveryGradientOnceInBackwardOrder) {
  const GPTConfig cfg = tiny_config(false);
  GPTModel<float> m(cfg);
  ModelRunner<float> run_m(m);
  m.init_weights(1);
  const Batch batch(cfg.vocab_size, 2);
  run_m.forward(batch.tokens.data(), batch.targets.data(), batch.B, batch.T, true);
  std::vector<std::pair<size_t, size_t>> slices;
  run_m.backward(1.0f, [&](size_t b, size_t e) { slices.emplace_back(b, e); });
  ASSERT_EQ(slices.size(), static_cast<size_t>(cfg.n_layer + 2));
  // Backward order = descending offsets; together they tile [0, num_params) exactly.
  EXPECT_EQ(slices.front().second, m.num_params());
  EXPECT_EQ(slices.back().first, 0u);
  for (size_t i = 1; i < slices.size(); ++i) EXPECT_EQ(slices[i].second, slices[i - 1].first);
}

TEST(GPTModel, LossScaleScalesAndBackwardAccumulates) {
  const GPTConfig cfg = tiny_config(true);
  GPTModel<double> m(cfg);
  ModelRunner<double> run_m(m);
  randomise(m, 7);
  const Batch batch(cfg.vocab_size, 8);
  run_m.forward(batch.tokens.data(), batch.targets.data(), batch.B, batch.T, false);
  run_m.backward(1.0);
  const std::vector<double> g1(m.grads(), m.grads() + m.num_params());
  EXPECT_THROW(run_m.backward(), Error);  // the backward consumed the logits (dlogits in place)
  run_m.forward(batch.tokens.data(), batch.targets.data(), batch.B, batch.T, false);
  run_m.backward(2.5);  // accumulates 2.5x on top: 3.5x in total
  for (size_t i = 0; i < g1.size(); ++i) ASSERT_NEAR(m.grads()[i], 3.5 * g1[i], 1e-12);
  m.zero_grad();
  for (size_t i = 0; i < g1.size(); ++i) ASSERT_EQ(m.grads()[i], 0.0);
}

TEST(GPTModel, DropoutIsDeterministicGivenTheRngAndOffInEval) {
  const GPTConfig cfg = tiny_config(true, 0.3f);
  GPTModel<float> m(cfg);
  ModelRunner<float> run_m(m);
  m.init_weights(1);
  const Batch batch(cfg.vocab_size, 2);
  auto run = [&](bool train, uint64_t seed) {
    Rng rng(seed);
    return run_m.forward(batch.tokens.data(), batch.targets.data(), batch.B, batch.T, train, &rng);
  };
  EXPECT_EQ(run(true, 1), run(true, 1));
  EXPECT_NE(run(true, 1), run(true, 2));
  EXPECT_EQ(run(false, 1), run(false, 2));
  EXPECT_THROW(run_m.forward(batch.tokens.data(), batch.targets.data(), batch.B, batch.T, true),
               Error);  // training with dropout needs an Rng
}

TEST(GPTModel, LargerThenSmallerBatchesReuseBuffersAndGiveTheSameLoss) {
  const GPTConfig cfg = tiny_config(true);
  GPTModel<double> m(cfg);
  ModelRunner<double> run_m(m);
  randomise(m, 9);
  const Batch small(cfg.vocab_size, 3);
  const double before = run_m.forward(small.tokens.data(), small.targets.data(), 1, small.T, false);
  std::vector<int32_t> big(4 * cfg.context_len, 1);
  run_m.forward(big.data(), big.data(), 4, cfg.context_len, false);
  const double after = run_m.forward(small.tokens.data(), small.targets.data(), 1, small.T, false);
  EXPECT_EQ(before, after);
}

TEST(GPTModel, RejectsBadInputs) {
  GPTModel<float> m(tiny_config(true));
  ModelRunner<float> run_m(m);
  std::vector<int32_t> tok(9, 0);
  EXPECT_THROW(run_m.forward(tok.data(), nullptr, 1, 9, false), Error);  // longer than context
  tok[2] = 37;
  EXPECT_THROW(run_m.forward(tok.data(), nullptr, 1, 8, false), Error);  // outside the vocabulary
  tok[2] = 0;
  run_m.forward(tok.data(), nullptr, 1, 8, false);
  EXPECT_THROW(run_m.backward(), Error);  // no targets
}

}  // namespace
}  // namespace loom
