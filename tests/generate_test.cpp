#include "loom/model/generate.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "loom/core/check.hpp"

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

TEST(Generate, GreedyFollowsTheModelsArgmaxAndTopK1IsGreedy) {
  GPTModel<float> m(tiny());
  m.init_weights(4);
  Rng r1(1), r2(2);
  const std::vector<int32_t> prompt = {3, 1, 4};
  const auto greedy = generate(m, prompt, 6, {0.0f, 0}, r1);
  const auto top1 = generate(m, prompt, 6, {0.8f, 1}, r2);
  EXPECT_EQ(greedy, top1);
  ASSERT_EQ(greedy.size(), 6u);
  // First generated token is the argmax of the last position's logits.
  m.forward(prompt.data(), nullptr, 1, 3, false);
  const float* last = m.logits() + 2 * 37;
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

}  // namespace
}  // namespace loom
