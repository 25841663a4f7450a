// GPTModel::bind_gradients: gradients written to caller-owned storage per tensor must be exactly
// those the default flat buffer receives (same kernels, same order), the flat buffer is given up,
// and zero_grad() clears the bound tensors.
#include <gtest/gtest.h>

#include <cstring>
#include <utility>
#include <vector>

#include "loom/core/check.hpp"
#include "loom/core/rng.hpp"
#include "loom/model/gpt.hpp"
#include "loom/model/model_runner.hpp"

namespace loom {
namespace {

GPTConfig small_config() {
  GPTConfig c;
  c.vocab_size = 41;
  c.context_len = 8;
  c.n_layer = 3;
  c.n_head = 2;
  c.d_model = 16;
  c.dropout = 0.1f;  // the masks must be drawn identically too
  return c;
}

using Slices = std::vector<std::pair<size_t, size_t>>;

// Two accumulated backward passes (different batches) with dropout; returns the on_ready slices.
Slices train_two_micro_batches(GPT& m) {
  Rng data(5), drop(9);
  Slices slices;
  const int B = 2, T = 6;
  std::vector<int32_t> tokens(B * T), targets(B * T);
  ModelRunner<float> run_m(m);
  for (int step = 0; step < 2; ++step) {
    for (auto& t : tokens) t = static_cast<int32_t>(data.below(41));
    for (auto& t : targets) t = static_cast<int32_t>(data.below(41));
    run_m.forward(tokens.data(), targets.data(), B, T, /*train=*/true, &drop);
    run_m.backward(0.5f, [&](size_t b, size_t e) { slices.emplace_back(b, e); });
  }
  return slices;
}

TEST(GptBindGradients, BoundStorageReceivesExactlyTheFlatBuffersGradients) {
  GPT flat(small_config()), bound(small_config());
  flat.init_weights(3);
  bound.init_weights(3);
  std::vector<std::vector<float>> storage;
  std::vector<float*> at;
  for (const auto& p : bound.layout()) storage.emplace_back(p.numel, 123.0f);  // not zeroed yet
  for (auto& s : storage) at.push_back(s.data());
  ASSERT_NE(bound.grads(), nullptr);
  bound.bind_gradients(at);
  EXPECT_EQ(bound.grads(), nullptr);  // the flat buffer is gone
  bound.zero_grad();
  for (const auto& s : storage)
    for (float x : s) ASSERT_EQ(x, 0.0f);

  const Slices flat_slices = train_two_micro_batches(flat);
  const Slices bound_slices = train_two_micro_batches(bound);
  EXPECT_EQ(flat_slices, bound_slices);
  const auto& layout = flat.layout();
  for (size_t i = 0; i < layout.size(); ++i) {
    EXPECT_EQ(std::memcmp(storage[i].data(), flat.grads() + layout[i].offset,
                          layout[i].numel * sizeof(float)),
              0)
        << layout[i].name;
  }
  // Something was written (the comparison above is not of two zero buffers).
  EXPECT_NE(storage.front()[0], 0.0f);

  bound.zero_grad();
  for (const auto& s : storage)
    for (float x : s) ASSERT_EQ(x, 0.0f);
}

TEST(GptBindGradients, RefusesAStorageListThatDoesNotMatchTheLayout) {
  GPT m(small_config());
  std::vector<float> one(1);
  EXPECT_THROW(m.bind_gradients({one.data()}), Error);
  std::vector<float*> nulls(m.layout().size(), nullptr);
  EXPECT_THROW(m.bind_gradients(nulls), Error);
  EXPECT_NE(m.grads(), nullptr);  // a refused binding leaves the model as it was
}

}  // namespace
}  // namespace loom
