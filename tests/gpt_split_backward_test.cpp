// The backward split in two (B: input gradient, W: weight gradients, for zero-bubble pipeline
// schedules) adds exactly what the fused backward adds, on every kind of stage, with dropout,
// in no more activation memory, and refuses to be misused.
#include <gtest/gtest.h>

#include <cmath>

#include "error_of.hpp"
#include "loom/model/gpt.hpp"
#include "model_shard_util.hpp"

namespace loom {
namespace {

TEST(GPTModel, SplitBackwardEqualsTheFusedOneOnEveryStage) {
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
    split.set_split_backward(true);
    auto run = [&](GPTModel<double>& m, bool split_backward) {
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
    run(fused, false);
    run(split, true);
    const std::vector<double> want(fused.grads(), fused.grads() + fused.num_params());
    const std::vector<double> got(split.grads(), split.grads() + split.num_params());
    EXPECT_EQ(test::max_abs_diff(got, want), 0.0) << "blocks from " << shard.first_block;
    // What B keeps for W takes the place of what B has finished with.
    EXPECT_EQ(split.activation_bytes(), fused.activation_bytes()) << "blocks from " << shard.first_block;
    if (!shard.has_embedding) {
      EXPECT_EQ(std::vector<double>(split.input_grad(), split.input_grad() + input.size()),
                std::vector<double>(fused.input_grad(), fused.input_grad() + input.size()));
    }
  }
}

TEST(GPTModel, SplitBackwardIsRefusedWhenMisused) {
  const GPTConfig cfg = test::shard_test_config(1);
  const test::TokenBatch batch(cfg.vocab_size, 3);
  GPTModel<double> m(cfg);
  m.init_weights(1);
  m.forward(batch.tokens.data(), batch.targets.data(), batch.B, batch.T, true);
  EXPECT_NE(test::error_of([&] { m.backward_input(1.0, nullptr); }).find("set_split_backward(true)"),
            std::string::npos);
  EXPECT_NE(test::error_of([&] { m.backward_weights(); }).find("no backward_input is waiting"),
            std::string::npos);
  m.set_split_backward(true);
  m.forward(batch.tokens.data(), batch.targets.data(), batch.B, batch.T, true);
  m.backward_input(1.0, nullptr);
  EXPECT_NE(test::error_of([&] {
              m.forward(batch.tokens.data(), batch.targets.data(), batch.B, batch.T, true);
            }).find("still waits for its backward_weights"),
            std::string::npos);
  m.backward_weights();
}

}  // namespace
}  // namespace loom
