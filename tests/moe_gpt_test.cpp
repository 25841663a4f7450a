// A GPT with mixture-of-experts blocks (issue 19), run by the chunk executor: the whole model's
// gradient (cross-entropy plus the load-balancing and z losses) against finite differences in
// double, recomputation and the split backward giving the same gradients, and the MoE term of
// the activation plan matching what a set holds.
#include <gtest/gtest.h>

#include <omp.h>

#include <cmath>
#include <vector>

#include "gradcheck.hpp"
#include "loom/core/rng.hpp"
#include "loom/model/activation_plan.hpp"
#include "loom/model/gpt.hpp"
#include "loom/model/model_runner.hpp"

namespace loom {
namespace {

// Block 1 of 2 is an MoE block (moe_every 2): 4 experts, top 2.
GPTConfig tiny_moe_config(float dropout = 0.0f) {
  GPTConfig c;
  c.vocab_size = 23;
  c.context_len = 8;
  c.n_layer = 2;
  c.n_head = 2;
  c.d_model = 8;
  c.dropout = dropout;
  c.moe_experts = 4;
  c.moe_top_k = 2;
  c.moe_every = 2;
  c.moe_capacity_factor = 1.0f;  // capacity 5 of the 10 tokens' 20 assignments: some drop
  c.moe_aux_loss_coef = 0.1f;    // large enough to matter in the gradient
  c.moe_z_loss_coef = 0.05f;
  return c;
}

template <typename T>
void randomise(GPTModel<T>& m, uint64_t seed) {
  m.init_weights(seed);
  Rng rng(seed + 1);
  for (size_t i = 0; i < m.num_params(); ++i) m.params()[i] += static_cast<T>(0.2 * rng.normal());
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

// The training loss: cross-entropy plus the MoE blocks' auxiliary losses.
template <typename T>
double training_loss(ModelRunner<T>& run, const Batch& batch, uint64_t drop_seed) {
  Rng rng(drop_seed);
  const double ce = run.forward(batch.tokens.data(), batch.targets.data(), batch.B, batch.T,
                                /*train=*/true, &rng);
  const moe::MoeStats s = run.moe_stats();
  return ce + s.load_balance_loss + s.z_loss;
}

void check_moe_gradient(const GPTConfig& cfg) {
  GPTModel<double> m(cfg);
  ModelRunner<double> run(m);
  randomise(m, 5);
  const Batch batch(cfg.vocab_size, 6);
  training_loss(run, batch, 77);
  const moe::MoeStats s = run.moe_stats();
  EXPECT_GT(s.load_balance_loss, 0);
  EXPECT_GT(s.z_loss, 0);
  EXPECT_GT(s.dropped_share, 0);  // the capacity drops some assignments: that path is checked too
  m.zero_grad();
  run.backward();
  const std::vector<double> analytic(m.grads(), m.grads() + m.num_params());
  const double e = test::max_rel_error(m.params(), m.num_params(), analytic.data(),
                                       [&] { return training_loss(run, batch, 77); });
  std::printf("moe model (%zu params) max rel error: %.2e\n", m.num_params(), e);
  EXPECT_LT(e, test::kGradTolerance);
}

TEST(MoeGpt, GradientMatchesFiniteDifferences) { check_moe_gradient(tiny_moe_config()); }

TEST(MoeGpt, GradientMatchesFiniteDifferencesWithDropout) {
  check_moe_gradient(tiny_moe_config(0.1f));
}

// Gradients of one training step in an executor mode.
std::vector<float> step_grads(const ExecutorOptions& o, float loss_scale) {
  GPTConfig cfg = tiny_moe_config(0.1f);
  GPTModel<float> m(cfg);
  randomise(m, 5);
  ModelRunner<float> run(m, o);
  const Batch batch(cfg.vocab_size, 6);
  Rng rng(9);
  run.forward(batch.tokens.data(), batch.targets.data(), batch.B, batch.T, true, &rng);
  m.zero_grad();
  if (o.split_backward) {
    run.backward_input(loss_scale, nullptr);
    run.backward_weights();
  } else {
    run.backward(loss_scale);
  }
  return {m.grads(), m.grads() + m.num_params()};
}

TEST(MoeGpt, RecomputeAndSplitBackwardGiveTheSameGradients) {
  const std::vector<float> plain = step_grads({}, 0.5f);
  for (ExecutorOptions o : {ExecutorOptions{0, Recompute::kFull, false},
                            ExecutorOptions{0, Recompute::kSelective, false},
                            ExecutorOptions{0, Recompute::kNone, true}}) {
    EXPECT_EQ(step_grads(o, 0.5f), plain) << recompute_name(o.recompute) << " split "
                                          << o.split_backward;
  }
  // loss_scale scales the auxiliary losses' gradients too.
  const std::vector<float> doubled = step_grads({}, 1.0f);
  for (size_t i = 0; i < plain.size(); ++i) ASSERT_FLOAT_EQ(doubled[i], 2 * plain[i]) << i;
}

TEST(MoeGpt, EvaluationIsDroplessAndDenseModelsHaveNoMoeTerm) {
  GPTConfig cfg = tiny_moe_config();
  GPTModel<float> m(cfg);
  randomise(m, 5);
  ModelRunner<float> run(m);
  const Batch batch(cfg.vocab_size, 6);
  run.forward(batch.tokens.data(), batch.targets.data(), batch.B, batch.T, /*train=*/true);
  EXPECT_GT(run.moe_stats().dropped_share, 0);
  run.forward(batch.tokens.data(), batch.targets.data(), batch.B, batch.T, /*train=*/false);
  EXPECT_EQ(run.moe_stats().dropped_share, 0);
  // What the set holds after a forward and backward is what activation_plan says.
  run.forward(batch.tokens.data(), batch.targets.data(), batch.B, batch.T, true);
  m.zero_grad();
  run.backward();
  ActivationShape shape;
  shape.blocks = cfg.n_layer;
  shape.batch = batch.B;
  shape.seq = batch.T;
  shape.threads = omp_get_max_threads();
  const ActivationBytes plan = activation_plan(cfg, shape);
  EXPECT_EQ(plan.moe_blocks, 1);
  EXPECT_EQ(run.set_bytes(), plan.set());
  GPTConfig dense = cfg;
  dense.moe_experts = 0;
  EXPECT_EQ(activation_plan(dense, shape).moe(), 0u);
}

}  // namespace
}  // namespace loom
