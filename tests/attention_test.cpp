#include "loom/kernels/cpu/attention.hpp"

#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>

#include "gradcheck.hpp"
#include "loom/kernels/cpu/dropout.hpp"

namespace loom::kernels {
namespace {

using test::dot;
using test::kGradTolerance;
using test::max_rel_error;
using test::random_vector;

struct AttentionFixture {
  explicit AttentionFixture(AttentionShape shape = {2, 5, 8, 2}) : s(shape) {}
  AttentionShape s;
  size_t N = static_cast<size_t>(s.B) * s.Tn;
  std::vector<double> qkv = random_vector(N * 3 * s.C, 1);
  std::vector<double> out = std::vector<double>(N * s.C);
  std::vector<double> att = std::vector<double>(static_cast<size_t>(s.B) * s.H * s.Tn * s.Tn);
  std::vector<double> scratch =
      std::vector<double>(attention_scratch_size(s, omp_get_max_threads()));
  void forward(const uint8_t* mask, float p) {
    attention_forward(out.data(), att.data(), qkv.data(), mask, p, s, scratch.data(),
                      scratch.size());
  }
};

TEST(Attention, ProbabilitiesAreCausalAndNormalised) {
  AttentionFixture f;
  f.forward(nullptr, 0.0f);
  const int T = f.s.Tn;
  for (int bh = 0; bh < f.s.B * f.s.H; ++bh) {
    for (int t = 0; t < T; ++t) {
      double sum = 0;
      for (int j = 0; j < T; ++j) {
        const double pr = f.att[(bh * T + t) * T + j];
        if (j > t) {
          EXPECT_EQ(pr, 0.0);
        }
        sum += pr;
      }
      EXPECT_NEAR(sum, 1.0, 1e-12);
    }
  }
  // The first position can only attend to itself: its output is its own value vector.
  const int C = f.s.C;
  for (int c = 0; c < C; ++c) EXPECT_NEAR(f.out[c], f.qkv[2 * C + c], 1e-12);
}

void check_attention_gradient(const uint8_t* mask, float p, const char* label,
                              AttentionShape shape = {2, 5, 8, 2}) {
  AttentionFixture f(shape);
  const auto R = random_vector(f.out.size(), 2);
  auto loss = [&] {
    f.forward(mask, p);
    return dot(f.out.data(), R.data(), f.out.size());
  };
  loss();
  std::vector<double> dqkv(f.qkv.size(), 3.0);  // overwritten
  attention_backward(dqkv.data(), R.data(), f.qkv.data(), f.att.data(), mask, p, f.s,
                     f.scratch.data(), f.scratch.size());
  const double e = max_rel_error(f.qkv.data(), f.qkv.size(), dqkv.data(), loss);
  std::printf("attention (%s) max rel error: dqkv %.2e\n", label, e);
  EXPECT_LT(e, kGradTolerance);
}

TEST(Attention, BackwardMatchesFiniteDifferences) { check_attention_gradient(nullptr, 0, "no dropout"); }

// T = 150 spans three causal row blocks (64 rows each), the last one partial.
TEST(Attention, BackwardOverSeveralRowBlocksMatchesFiniteDifferences) {
  check_attention_gradient(nullptr, 0, "T = 150, no dropout", {1, 150, 4, 2});
}

TEST(Attention, BackwardWithFixedDropoutMaskMatchesFiniteDifferences) {
  AttentionFixture f;
  std::vector<uint8_t> mask(f.att.size());
  dropout_mask(mask.data(), mask.size(), 0.3f, 11);
  check_attention_gradient(mask.data(), 0.3f, "dropout 0.3, fixed mask");
}

}  // namespace
}  // namespace loom::kernels
