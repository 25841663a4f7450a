#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "loom/core/check.hpp"
#include "loom/core/rng.hpp"
#include "loom/optim/adamw.hpp"
#include "loom/optim/grad_clip.hpp"
#include "loom/optim/lr_schedule.hpp"

namespace loom {
namespace {

// A matrix (decayed) followed by a bias (not decayed).
std::vector<ParamInfo> two_params() {
  ParamInfo w{"w", {2, 2}, 0, 4, true, {}, {}}, b{"b", {2}, 4, 2, false, {}, {}};
  return {w, b};
}

TEST(AdamW, TwoStepsMatchAHandComputedReferenceWithDecoupledDecayAndMask) {
  const AdamWParams hp{0.9f, 0.99f, 1e-8f, 0.5f};
  AdamW opt(two_params(), hp);
  std::vector<float> p = {1.0f, -2.0f, 0.5f, 3.0f, 1.0f, -1.0f};
  const std::vector<std::vector<float>> g = {{0.1f, -0.2f, 0.3f, 0.0f, 0.5f, -0.5f},
                                             {-0.3f, 0.1f, 0.2f, 0.4f, 0.25f, 1.0f}};
  std::vector<double> ref(p.begin(), p.end()), m(6, 0), v(6, 0);
  const double lr[2] = {0.01, 0.02};
  for (int t = 1; t <= 2; ++t) {
    opt.step(p.data(), g[t - 1].data(), static_cast<float>(lr[t - 1]));
    for (int i = 0; i < 6; ++i) {
      const double gi = g[t - 1][i];
      m[i] = 0.9 * m[i] + 0.1 * gi;
      v[i] = 0.99 * v[i] + 0.01 * gi * gi;
      const double mhat = m[i] / (1 - std::pow(0.9, t)), vhat = v[i] / (1 - std::pow(0.99, t));
      const double wd = i < 4 ? 0.5 : 0.0;  // the bias is not decayed
      ref[i] -= lr[t - 1] * (mhat / (std::sqrt(vhat) + 1e-8) + wd * ref[i]);
    }
    for (int i = 0; i < 6; ++i) EXPECT_NEAR(p[i], ref[i], 1e-6) << "step " << t << " element " << i;
  }
  EXPECT_EQ(opt.step_count(), 2);
  // A zero gradient still decays a matrix entry (decoupled decay) but not the bias.
  EXPECT_NE(p[3], 3.0f);
}

TEST(AdamW, ShardsUpdateExactlyLikeTheWholeBuffer) {
  const auto layout = two_params();
  const AdamWParams hp{};
  AdamW whole(layout, hp), lo(layout, hp, 0, 3), hi(layout, hp, 3, 6);
  EXPECT_EQ(hi.end(), 6u);
  std::vector<float> a = {1, 2, 3, 4, 5, 6}, b = a, g = {0.1f, -0.4f, 2, 0.3f, -1, 0.7f};
  for (int s = 0; s < 3; ++s) {
    whole.step(a.data(), g.data(), 1e-2f);
    lo.step(b.data(), g.data(), 1e-2f);
    hi.step(b.data(), g.data(), 1e-2f);
  }
  EXPECT_EQ(a, b);
  EXPECT_EQ(whole.m()[4], hi.m()[1]);
}

TEST(AdamW, GradScaleEqualsSteppingOnPrescaledGradients) {
  const auto layout = two_params();
  AdamW scaled(layout, {}), prescaled(layout, {});
  std::vector<float> a = {1, 2, 3, 4, 5, 6}, b = a, g = {0.1f, -0.4f, 2, 0.3f, -1, 0.7f}, gs = g;
  const float clip = 0.37f;
  for (auto& x : gs) x *= clip;
  for (int s = 0; s < 3; ++s) {
    scaled.step(a.data(), g.data(), 1e-2f, clip);
    prescaled.step(b.data(), gs.data(), 1e-2f);
  }
  EXPECT_EQ(a, b);  // the same float multiply, so bit-identical
  EXPECT_NE(a[0], 1.0f);
}

TEST(LrSchedule, WarmupThenCosineToMinLr) {
  LrSchedule s{1e-5f, 1e-3f, 1e-4f, 10, 110};
  s.validate();
  EXPECT_FLOAT_EQ(s.at(0), 1e-5f);                                 // warm-up start
  EXPECT_FLOAT_EQ(s.at(5), 1e-5f + 5 * (1e-3f - 1e-5f) / 10);     // linear
  EXPECT_FLOAT_EQ(s.at(10), 1e-3f);                                // warm-up end: peak
  EXPECT_FLOAT_EQ(s.at(60), 0.5f * (1e-3f + 1e-4f));               // mid-cosine
  EXPECT_FLOAT_EQ(s.at(110), 1e-4f);                               // end: min_lr
  EXPECT_FLOAT_EQ(s.at(500), 1e-4f);
  EXPECT_GT(s.at(30), s.at(31));
}

TEST(LrSchedule, RejectsImpossibleValues) {
  EXPECT_THROW((LrSchedule{0, 1e-3f, 0, 10, 10}.validate()), Error);  // warm-up >= total
  EXPECT_THROW((LrSchedule{0, 1e-3f, 2e-3f, 1, 10}.validate()), Error);  // min_lr > lr
  EXPECT_NO_THROW((LrSchedule{0, 1e-3f, 0, 0, 10}.validate()));
}

TEST(GradClip, NormIsComputedAndClippedExactlyToMaxNorm) {
  Rng rng(5);
  std::vector<float> g(200000);  // several blocks
  double sq = 0;
  for (auto& x : g) {
    x = static_cast<float>(rng.normal());
    sq += static_cast<double>(x) * x;
  }
  const double norm = std::sqrt(grad_sq_sum(g.data(), g.size()));
  EXPECT_NEAR(norm, std::sqrt(sq), 1e-9 * std::sqrt(sq));
  const float s = clip_scale(norm, 1.0f);
  for (auto& x : g) x *= s;
  EXPECT_NEAR(std::sqrt(grad_sq_sum(g.data(), g.size())), 1.0, 1e-5);
}

TEST(GradClip, BelowMaxNormIsANoOp) {
  std::vector<float> g = {0.3f, 0.4f};
  const double norm = std::sqrt(grad_sq_sum(g.data(), g.size()));
  EXPECT_NEAR(norm, 0.5, 1e-7);
  EXPECT_EQ(clip_scale(norm, 1.0f), 1.0f);
}

TEST(GradClip, ClipsOnlyAfterWarmupUnlessAskedTo) {
  EXPECT_FALSE(clips_at(0, 10, false));
  EXPECT_FALSE(clips_at(10, 10, false));  // the seed: global_step > warmup_steps
  EXPECT_TRUE(clips_at(11, 10, false));
  EXPECT_TRUE(clips_at(0, 10, true));
}

}  // namespace
}  // namespace loom
