// The bf16 weight cache (kernels/cpu/bf16_operands.hpp): a copy it hands out stays where it is,
// with its contents, while other shapes of the same matrix and other matrices are cached after it
// (the products of one scope read a weight whole and by blocks, from several threads).
#include <gtest/gtest.h>

#include <vector>

#include "loom/kernels/cpu/bf16_operands.hpp"

namespace loom::kernels {
namespace {

std::vector<float> distinct_values(size_t n, float first) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = first + 0.01f * static_cast<float>(i);
  return v;
}

// The dense [rows, cols] block of src (row stride ld), rounded to bf16 and back.
std::vector<float> rounded_block(const std::vector<float>& src, int rows, int cols, int ld) {
  std::vector<float> b;
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c)
      b.push_back(from_bf16(to_bf16(src[static_cast<size_t>(r) * ld + c])));
  return b;
}

std::vector<float> widened(const bf16* copy, size_t n) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = from_bf16(copy[i]);
  return v;
}

TEST(Bf16WeightCache, ACopyStaysValidWhileOtherShapesAndMatricesAreCached) {
  const std::vector<float> w = distinct_values(64, 1.0f);   // [8, 8]
  const std::vector<float> v = distinct_values(256, 2.0f);  // [16, 16], another weight
  new_weight_generation();
  // w's top-left [2, 2] block first, then the whole of w (larger), then the block again, with
  // another weight in between each: no copy may be moved, resized or overwritten by the next.
  const bf16* block = cached_bf16(w.data(), 2, 2, 8);
  const bf16* other = cached_bf16(v.data(), 16, 16, 16);
  const bf16* whole = cached_bf16(w.data(), 8, 8, 8);
  const bf16* other_block = cached_bf16(v.data(), 4, 4, 16);
  EXPECT_EQ(cached_bf16(w.data(), 2, 2, 8), block);  // same generation: the same copy
  EXPECT_EQ(widened(block, 4), rounded_block(w, 2, 2, 8));
  EXPECT_EQ(widened(whole, 64), rounded_block(w, 8, 8, 8));
  EXPECT_EQ(widened(other, 256), rounded_block(v, 16, 16, 16));
  EXPECT_EQ(widened(other_block, 16), rounded_block(v, 4, 4, 16));
  // A new generation refills each copy where it is.
  new_weight_generation();
  EXPECT_EQ(cached_bf16(w.data(), 8, 8, 8), whole);
  EXPECT_EQ(cached_bf16(w.data(), 2, 2, 8), block);
  EXPECT_EQ(widened(whole, 64), rounded_block(w, 8, 8, 8));
  EXPECT_EQ(widened(block, 4), rounded_block(w, 2, 2, 8));
}

}  // namespace
}  // namespace loom::kernels
