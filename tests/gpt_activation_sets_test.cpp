// Activation sets: two forwards kept in their own sets, their backwards run later in the other
// order, give exactly the gradients of running each forward and backward in turn (what lets a
// pipeline stage hold several micro-batches in flight without recomputing them).
#include <gtest/gtest.h>

#include <cmath>
#include <functional>

#include "loom/model/gpt.hpp"
#include "model_shard_util.hpp"

namespace loom {
namespace {

template <typename Model>
void run_in(Model& m, typename Model::Activations& set, const std::function<void()>& f) {
  m.swap_activations(set);
  f();
  m.swap_activations(set);
}

TEST(GPTModel, ActivationSetsKeepSeveralForwardsForTheirBackwards) {
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
    auto forward = [&](GPTModel<double>& m, const test::TokenBatch& b) {
      return shard.has_embedding ? m.forward(b.tokens.data(), b.targets.data(), b.B, b.T, true)
                                 : m.forward_activation(input.data(), b.targets.data(), b.B, b.T, true);
    };
    const double l2 = forward(ref, two);
    ref.backward(0.5);
    const double l1 = forward(ref, one);
    ref.backward(0.5);

    auto a = GPTModel<double>::new_activations(), b = GPTModel<double>::new_activations();
    double s1 = 0, s2 = 0;
    run_in(sets, *a, [&] { s1 = forward(sets, one); });
    run_in(sets, *b, [&] { s2 = forward(sets, two); });
    run_in(sets, *b, [&] { sets.backward(0.5); });
    run_in(sets, *a, [&] { sets.backward(0.5); });
    EXPECT_EQ(s1, l1);
    EXPECT_EQ(s2, l2);
    const std::vector<double> want(ref.grads(), ref.grads() + ref.num_params());
    const std::vector<double> got(sets.grads(), sets.grads() + sets.num_params());
    EXPECT_EQ(test::max_abs_diff(got, want), 0.0) << "first block " << shard.first_block;
  }
}

}  // namespace
}  // namespace loom
