// Model shards in one process: the parameter layout of tensor-parallel slices against the whole
// Hugging Face tensors, and pipeline stages chained by hand against the whole model.
#include <gtest/gtest.h>

#include <cmath>

#include "loom/core/check.hpp"
#include "loom/model/gpt.hpp"
#include "loom/model/model_runner.hpp"
#include "model_shard_util.hpp"

namespace loom {
namespace {

using test::shard_test_config;

// The pieces of every tp rank, put back with copy_to_whole, rebuild each whole tensor exactly;
// c_attn's pieces are per-head columns of q, k and v; wte's padding rows are never copied.
TEST(ParamLayout, TensorParallelPiecesRebuildTheWholeTensors) {
  const GPTConfig cfg = shard_test_config();
  const auto whole_layout = gpt_param_layout(cfg);
  const size_t n = whole_layout.back().offset + whole_layout.back().numel;
  std::vector<double> whole(n);
  for (size_t i = 0; i < n; ++i) whole[i] = static_cast<double>(i) + 1;
  for (int tp : {2, 4}) {
    std::vector<double> rebuilt(n, 0.0);
    size_t held = 0;
    for (int r = 0; r < tp; ++r) {
      const auto layout = gpt_param_layout(cfg, {r, tp});
      for (const auto& p : layout) {
        const auto& w = *std::find_if(whole_layout.begin(), whole_layout.end(),
                                      [&](const ParamInfo& q) { return q.name == p.name; });
        EXPECT_EQ(p.whole_shape(), w.shape) << p.name;
        std::vector<double> piece(p.numel, -1);
        copy_from_whole(p, whole.data() + w.offset, piece.data());
        if (p.replicated() && r > 0) continue;
        held += p.numel;
        copy_to_whole(p, piece.data(), rebuilt.data() + w.offset);
      }
    }
    EXPECT_EQ(rebuilt, whole) << "tp " << tp;
    EXPECT_EQ(held, n + static_cast<size_t>(padded_vocab(cfg.vocab_size, tp) - cfg.vocab_size) *
                            cfg.d_model)
        << "tp " << tp << ": every element held once, plus the padding rows";
  }
  // tp 2, rank 1, C = 16: c_attn columns 8..15 of q, 24..31 of k, 40..47 of v.
  const auto layout = gpt_param_layout(cfg, {1, 2});
  const auto& qkv = *std::find_if(layout.begin(), layout.end(), [](const ParamInfo& p) {
    return p.name == "transformer.h.0.attn.c_attn.weight";
  });
  EXPECT_EQ(qkv.shape, (std::vector<int64_t>{16, 24}));
  std::vector<double> w(16 * 48), piece(16 * 24);
  for (size_t i = 0; i < w.size(); ++i) w[i] = static_cast<double>(i % 48);  // = column index
  copy_from_whole(qkv, w.data(), piece.data());
  EXPECT_EQ(piece[0], 8);
  EXPECT_EQ(piece[8], 24);
  EXPECT_EQ(piece[23], 47);
  // wte: 37 rows padded to 38, 19 per rank; rank 1 holds rows 19..36 and one padding row.
  const ParamInfo& wte = layout[0];
  EXPECT_EQ(wte.shape, (std::vector<int64_t>{19, 16}));
  EXPECT_EQ(wte.whole_shape(), (std::vector<int64_t>{37, 16}));
  std::vector<double> table(37 * 16, 5.0), rows(19 * 16, -1);
  copy_from_whole(wte, table.data(), rows.data());
  EXPECT_EQ(rows[17 * 16], 5.0);
  EXPECT_EQ(rows[18 * 16], 0.0) << "the padding row is zero";
}

TEST(ModelShard, BadShardsAreRefusedNamingTheProblem) {
  const GPTConfig cfg = shard_test_config();
  EXPECT_THROW(gpt_param_layout(cfg, {0, 3}), Error);  // 3 does not divide n_head 4
  EXPECT_THROW(gpt_param_layout(cfg, {0, 1, 1, 5}), Error);
  EXPECT_THROW(GPTModel<float>(cfg, {0, 2}), Error);  // tp 2 without a group
  try {
    check_tp_divides_heads(cfg, 3, "--tp");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--tp 3"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("valid: 1, 2, 4"), std::string::npos) << e.what();
  }
}

// Two stages chained by hand — blocks [0, 2) with the embedding, then [2, 3) with the head —
// give the whole model's loss, and their gradients are the whole model's (wte's two halves, the
// embedding's and the LM head's, add up to the tied gradient, as the embedding group sums them).
TEST(ModelShard, TwoChainedStagesMatchTheWholeModel) {
  const GPTConfig cfg = shard_test_config(3);
  const auto params = test::random_whole_params(cfg, 11);
  const test::TokenBatch batch(cfg.vocab_size, 12);
  GPTModel<double> whole(cfg);
  ModelRunner<double> run_whole(whole);
  test::load_pieces(whole, params);
  const double loss = run_whole.forward(batch.tokens.data(), batch.targets.data(), batch.B, batch.T, true);
  run_whole.backward(0.5);

  GPTModel<double> first(cfg, {0, 1, 0, 2, true, false}), last(cfg, {0, 1, 2, 3, false, true});
  ModelRunner<double> run_first(first);
  ModelRunner<double> run_last(last);
  test::load_pieces(first, params);
  test::load_pieces(last, params);
  EXPECT_EQ(run_first.forward(batch.tokens.data(), nullptr, batch.B, batch.T, true), 0.0);
  const double chained = run_last.forward_activation(run_first.output(), batch.targets.data(), batch.B,
                                                 batch.T, true);
  EXPECT_EQ(chained, loss);
  std::vector<std::pair<size_t, size_t>> ready;
  run_last.backward(0.5, [&](size_t b, size_t e) { ready.emplace_back(b, e); });
  run_first.backward_from_output(run_last.input_grad());

  std::vector<double> grads(whole.num_params(), 0.0);
  test::add_grad_pieces(first, grads);
  test::add_grad_pieces(last, grads);
  const std::vector<double> expected(whole.grads(), whole.grads() + whole.num_params());
  EXPECT_LT(test::max_abs_diff(grads, expected), 1e-14);
  // The last stage's gradient slices arrive from the end of its buffer to its start.
  ASSERT_FALSE(ready.empty());
  EXPECT_EQ(ready.front().second, last.num_params());
  EXPECT_EQ(ready.back().first, 0u);
  for (size_t i = 1; i < ready.size(); ++i) EXPECT_EQ(ready[i].second, ready[i - 1].first);
  EXPECT_THROW(run_first.backward(), Error) << "a stage without the head has no loss";
  EXPECT_THROW(run_last.forward(batch.tokens.data(), nullptr, 1, 5, false), Error)
      << "a stage without the embedding takes activations";
}

}  // namespace
}  // namespace loom
