#include "loom/model/generate.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "loom/core/check.hpp"
#include "loom/model/model_runner.hpp"

namespace loom {
namespace {

GPTConfig tiny() {
  GPTConfig c;
  c.vocab_size = 37;
  c.context_len = 8;
  c.n_layer = 2;
  c.n_head = 2;
  c.d_model = 16;
  return c;
}

TEST(SampleToken, GreedyPicksTheFirstArgmax) {
  const std::vector<float> logits = {0.1f, 2.0f, -1.0f, 2.0f, 1.9f};
  Rng rng(1);
  EXPECT_EQ(sample_token(logits.data(), 5, {0.0f, 0}, rng), 1);
  EXPECT_EQ(sample_token(logits.data(), 5, {1.0f, 1}, rng), 1);  // top_k = 1 == greedy
}

TEST(SampleToken, TopKNeverLeavesTheTopK) {
  const std::vector<float> logits = {5.0f, 0.0f, 4.9f, 4.8f, 0.1f, 4.7f};
  Rng rng(2);
  std::vector<int> seen(6, 0);
  for (int i = 0; i < 2000; ++i) seen[sample_token(logits.data(), 6, {1.0f, 3}, rng)]++;
  EXPECT_GT(seen[0], 0);
  EXPECT_GT(seen[2], 0);
  EXPECT_GT(seen[3], 0);
  EXPECT_EQ(seen[1] + seen[4] + seen[5], 0);
}

TEST(SampleToken, TemperatureSharpensTheDistribution) {
  const std::vector<float> logits = {1.0f, 0.0f};
  auto freq0 = [&](float temp) {
    Rng rng(3);
    int n = 0;
    for (int i = 0; i < 4000; ++i) n += sample_token(logits.data(), 2, {temp, 0}, rng) == 0;
    return n / 4000.0;
  };
  EXPECT_NEAR(freq0(1.0f), 1 / (1 + std::exp(-1.0)), 0.03);
  EXPECT_GT(freq0(0.2f), 0.98);
}

TEST(SampleToken, TopPKeepsTheSmallestSetReachingItAndRenormalises) {
  // exp(logits): 148.4, 1, 134.3, 121.5, 1.1, 109.9 (sum 516.2): the top two hold 0.548.
  const std::vector<float> logits = {5.0f, 0.0f, 4.9f, 4.8f, 0.1f, 4.7f};
  auto counts = [&](float top_p, int top_k) {
    Rng rng(4);
    std::vector<int> seen(6, 0);
    for (int i = 0; i < 4000; ++i) seen[sample_token(logits.data(), 6, {1.0f, top_k, top_p}, rng)]++;
    return seen;
  };
  const auto two = counts(0.54f, 0);
  EXPECT_EQ(two[1] + two[3] + two[4] + two[5], 0);
  EXPECT_NEAR(two[0] / 4000.0, 148.41 / (148.41 + 134.29), 0.03);  // renormalised over the two
  const auto three = counts(0.56f, 0);
  EXPECT_GT(three[3], 0);
  EXPECT_EQ(three[1] + three[4] + three[5], 0);
  EXPECT_EQ(counts(0.01f, 0)[0], 4000);  // the top token alone
  // After top_k 2, top_p applies to the renormalised pair: 0.6 of it is both tokens.
  const auto k2 = counts(0.6f, 2);
  EXPECT_GT(k2[2], 0);
  EXPECT_EQ(k2[0] + k2[2], 4000);
  // top_p 1 draws exactly as no nucleus filter.
  Rng a(5), b(5);
  for (int i = 0; i < 200; ++i)
    ASSERT_EQ(sample_token(logits.data(), 6, {0.7f, 0, 1.0f}, a), sample_token(logits.data(), 6, {0.7f, 0}, b));
  Rng r(6);
  EXPECT_THROW(sample_token(logits.data(), 6, {1.0f, 0, 0.0f}, r), Error);
  EXPECT_THROW(sample_token(logits.data(), 6, {1.0f, 0, 1.5f}, r), Error);
}

TEST(GenerateTokens, StopsAtTheStopTokenAndStreamsEachTokenBeforeTheNextIsComputed) {
  // next() emits 5, 6, 7, ... in order; the stop token 8 ends generation and is not returned.
  int calls = 0;
  const auto next = [&](const int32_t*, int) { return static_cast<int32_t>(5 + calls++); };
  std::vector<std::pair<int, int32_t>> streamed;  // (calls when streamed, token)
  GenerateControl control;
  control.stop_token = 8;
  control.on_token = [&](int seq, int32_t token) {
    EXPECT_EQ(seq, 0);
    streamed.push_back({calls, token});
  };
  EXPECT_EQ(generate_tokens({1}, 10, 4, next, control), (std::vector<int32_t>{5, 6, 7}));
  EXPECT_EQ(calls, 4);
  // Token i was streamed right after call i + 1, before call i + 2 computed the next one.
  EXPECT_EQ(streamed, (std::vector<std::pair<int, int32_t>>{{1, 5}, {2, 6}, {3, 7}}));
  calls = 0;
  EXPECT_EQ(generate_tokens({1}, 6, 4, next).size(), 6u);  // no stop token: all of them
}

TEST(Generate, GreedyFollowsTheModelsArgmaxAndTopK1IsGreedy) {
  GPTModel<float> m(tiny());
  ModelRunner<float> run_m(m);
  m.init_weights(4);
  Rng r1(1), r2(2);
  const std::vector<int32_t> prompt = {3, 1, 4};
  const auto greedy = generate(m, prompt, 6, {0.0f, 0}, r1);
  const auto top1 = generate(m, prompt, 6, {0.8f, 1}, r2);
  EXPECT_EQ(greedy, top1);
  ASSERT_EQ(greedy.size(), 6u);
  // First generated token is the argmax of the last position's logits.
  run_m.forward(prompt.data(), nullptr, 1, 3, false);
  const float* last = run_m.logits() + 2 * 37;
  EXPECT_EQ(greedy[0], std::max_element(last, last + 37) - last);
}

TEST(Generate, SamplingIsDeterministicGivenTheRng) {
  GPTModel<float> m(tiny());
  m.init_weights(4);
  Rng a(9), b(9);
  EXPECT_EQ(generate(m, {1, 2}, 10, {1.0f, 5}, a), generate(m, {1, 2}, 10, {1.0f, 5}, b));
}

TEST(Generate, PromptLongerThanContextIsCroppedToTheLastTokens) {
  GPTModel<float> m(tiny());
  m.init_weights(5);
  std::vector<int32_t> long_prompt;
  for (int i = 0; i < 20; ++i) long_prompt.push_back(i % 37);
  const std::vector<int32_t> tail(long_prompt.end() - 8, long_prompt.end());
  Rng r1(1), r2(1);
  EXPECT_EQ(generate(m, long_prompt, 5, {0.0f, 0}, r1), generate(m, tail, 5, {0.0f, 0}, r2));
  EXPECT_THROW(generate(m, {}, 1, {}, r1), Error);
}

TEST(Generate, StopTokenEndsTheModelsContinuationAtItsFirstOccurrence) {
  GPTModel<float> m(tiny());
  m.init_weights(7);
  Rng r1(1), r2(1);
  const auto full = generate(m, {2, 3}, 12, {0.0f, 0}, r1);
  GenerateControl control;
  control.stop_token = full[4];
  const auto first = std::find(full.begin(), full.end(), full[4]);
  EXPECT_EQ(generate(m, {2, 3}, 12, {0.0f, 0}, r2, control), std::vector<int32_t>(full.begin(), first));
}

}  // namespace
}  // namespace loom
