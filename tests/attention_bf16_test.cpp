// The attention under a bf16 MatmulPrecisionScope: each of its products must be the product of
// the bf16-rounded operands (q, k, v, dout rounded once for all heads and row blocks, the
// probabilities and their gradient once per row block), checked against double references
// built from the same rounded operands. A product that read an operand unrounded would be off
// by about bf16's rounding, 50-100x more than these tests allow.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

#include "loom/core/rng.hpp"
#include "loom/kernels/cpu/attention.hpp"
#include "loom/kernels/cpu/bf16.hpp"
#include "loom/kernels/cpu/matmul.hpp"

namespace loom::kernels {
namespace {

double r16(double x) { return from_bf16(to_bf16(static_cast<float>(x))); }

std::vector<float> random_floats(size_t n, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> v(n);
  for (auto& x : v) x = static_cast<float>(rng.normal());
  return v;
}

// Largest |got - want| / scale over the elements, where scale is the sum of |terms| of want's
// product (the size of its rounding error).
struct Worst {
  double err = 0;
  void add(double got, double want, double scale) {
    err = std::max(err, std::abs(got - want) / scale);
  }
};

// T = 150 spans three row blocks (the last partial), so the products read the rounded q, k, v
// and dout at row offsets.
struct Bf16AttentionFixture {
  AttentionShape s{2, 150, 16, 2};
  int T = s.Tn, C = s.C, hs = s.C / s.H, C3 = 3 * s.C;
  size_t N = static_cast<size_t>(s.B) * T;
  std::vector<float> qkv = random_floats(N * C3, 21), dout = random_floats(N * C, 22);
  std::vector<float> out = std::vector<float>(N * C), dqkv = std::vector<float>(N * C3);
  std::vector<float> att = std::vector<float>(static_cast<size_t>(s.B) * s.H * T * T);
  std::vector<float> scratch = std::vector<float>(attention_scratch_size(s, omp_get_max_threads()));

  Bf16AttentionFixture() {
    MatmulPrecisionScope bf16(MatmulPrecision::kBF16);
    attention_forward(out.data(), att.data(), qkv.data(), nullptr, 0.0f, s, scratch.data(),
                      scratch.size());
    attention_backward(dqkv.data(), dout.data(), qkv.data(), att.data(), nullptr, 0.0f, s,
                       scratch.data(), scratch.size());
  }
  // Element c of q (part 0), k (1) or v (2) of head h at (b, t), and the same of dqkv, dout.
  size_t qkv_at(int part, int b, int h, int t, int c) const {
    return (static_cast<size_t>(b) * T + t) * C3 + part * C + h * hs + c;
  }
  size_t out_at(int b, int h, int t, int c) const {
    return (static_cast<size_t>(b) * T + t) * C + h * hs + c;
  }
  float P(int b, int h, int t, int j) const {
    return att[((static_cast<size_t>(b) * s.H + h) * T + t) * T + j];
  }
};

TEST(AttentionBf16, ForwardProductsReadRoundedOperands) {
  if (!bf16_matmul_available()) GTEST_SKIP() << "no AVX512_BF16 on this CPU";
  const Bf16AttentionFixture f;
  const double scale = 1.0 / std::sqrt(static_cast<double>(f.hs));
  Worst probs, probs_unrounded, o, o_unrounded;
  for (int b = 0; b < f.s.B; ++b) {
    for (int h = 0; h < f.s.H; ++h) {
      for (int t = 0; t < f.T; ++t) {
        // softmax(scale * bf16(q) bf16(k)^T) and the same from the float q, k
        std::vector<double> S(t + 1), S32(t + 1);
        for (int j = 0; j <= t; ++j) {
          double acc = 0, acc32 = 0;
          for (int c = 0; c < f.hs; ++c) {
            const float q = f.qkv[f.qkv_at(0, b, h, t, c)], k = f.qkv[f.qkv_at(1, b, h, j, c)];
            acc += r16(q) * r16(k);
            acc32 += double(q) * k;
          }
          S[j] = scale * acc, S32[j] = scale * acc32;
        }
        const double mx = *std::max_element(S.begin(), S.end());
        const double mx32 = *std::max_element(S32.begin(), S32.end());
        double sum = 0, sum32 = 0;
        for (int j = 0; j <= t; ++j) sum += std::exp(S[j] - mx), sum32 += std::exp(S32[j] - mx32);
        for (int j = 0; j <= t; ++j) {
          probs.add(f.P(b, h, t, j), std::exp(S[j] - mx) / sum, 1.0);
          probs_unrounded.add(f.P(b, h, t, j), std::exp(S32[j] - mx32) / sum32, 1.0);
        }
        // out = bf16(P) bf16(v), from the kernel's own P
        for (int c = 0; c < f.hs; ++c) {
          double acc = 0, mag = 0, acc32 = 0;
          for (int j = 0; j <= t; ++j) {
            const float p = f.P(b, h, t, j), v = f.qkv[f.qkv_at(2, b, h, j, c)];
            acc += r16(p) * r16(v);
            mag += std::abs(r16(p) * r16(v));
            acc32 += double(p) * v;
          }
          o.add(f.out[f.out_at(b, h, t, c)], acc, mag);
          o_unrounded.add(f.out[f.out_at(b, h, t, c)], acc32, mag);
        }
      }
    }
  }
  std::printf("bf16 attention forward: P err %.2e (unrounded %.2e), out err %.2e (%.2e)\n",
              probs.err, probs_unrounded.err, o.err, o_unrounded.err);
  EXPECT_LT(probs.err, 1e-5);
  EXPECT_GT(probs_unrounded.err, 1e-3);
  EXPECT_LT(o.err, 1e-5);
  EXPECT_GT(o_unrounded.err, 1e-3);
}

TEST(AttentionBf16, BackwardProductsReadRoundedOperands) {
  if (!bf16_matmul_available()) GTEST_SKIP() << "no AVX512_BF16 on this CPU";
  const Bf16AttentionFixture f;
  const double scale = 1.0 / std::sqrt(static_cast<double>(f.hs));
  // dv, dq, dk against references from the rounded operands (r*) and from float q, k, v, dout.
  Worst dv, dv_unrounded, dq, dq_unrounded, dk, dk_unrounded;
  for (int b = 0; b < f.s.B; ++b) {
    for (int h = 0; h < f.s.H; ++h) {
      auto x = [&](int part, int t, int c) { return double(f.qkv[f.qkv_at(part, b, h, t, c)]); };
      auto dO = [&](int t, int c) { return double(f.dout[f.out_at(b, h, t, c)]); };
      auto got = [&](int part, int t, int c) { return f.dqkv[f.qkv_at(part, b, h, t, c)]; };
      // dS = scale * P * (dP - rowsum(P * dP)) with dP = bf16(dout) bf16(v)^T, rounded to bf16
      // as the kernel rounds it. The kernel's float dS differs from this double one in the last
      // bits, so a few elements near a rounding boundary round the other way: dq and dk get a
      // tolerance 10x above the ~1e-5 that this causes, still 50x below an unrounded operand.
      std::vector<double> dS(static_cast<size_t>(f.T) * f.T, 0.0), dS32 = dS;
      for (int t = 0; t < f.T; ++t) {
        std::vector<double> dP(t + 1), dP32(t + 1);
        double dot = 0, dot32 = 0;
        for (int j = 0; j <= t; ++j) {
          for (int c = 0; c < f.hs; ++c) {
            dP[j] += r16(dO(t, c)) * r16(x(2, j, c));
            dP32[j] += dO(t, c) * x(2, j, c);
          }
          dot += f.P(b, h, t, j) * dP[j], dot32 += f.P(b, h, t, j) * dP32[j];
        }
        for (int j = 0; j <= t; ++j) {
          dS[t * f.T + j] = r16(scale * f.P(b, h, t, j) * (dP[j] - dot));
          dS32[t * f.T + j] = scale * f.P(b, h, t, j) * (dP32[j] - dot32);
        }
      }
      for (int t = 0; t < f.T; ++t) {
        for (int c = 0; c < f.hs; ++c) {
          // dv[t] = sum_i P[i,t] dout[i];  dk[t] = sum_i dS[i,t] q[i];  dq[t] = sum_j dS[t,j] k[j]
          double v = 0, v_mag = 0, v32 = 0, k = 0, k_mag = 0, k32 = 0;
          for (int i = t; i < f.T; ++i) {
            v += r16(f.P(b, h, i, t)) * r16(dO(i, c));
            v_mag += std::abs(r16(f.P(b, h, i, t)) * r16(dO(i, c)));
            v32 += f.P(b, h, i, t) * dO(i, c);
            k += dS[i * f.T + t] * r16(x(0, i, c));
            k_mag += std::abs(dS[i * f.T + t] * r16(x(0, i, c)));
            k32 += dS32[i * f.T + t] * x(0, i, c);
          }
          double q = 0, q_mag = 0, q32 = 0;
          for (int j = 0; j <= t; ++j) {
            q += dS[t * f.T + j] * r16(x(1, j, c));
            q_mag += std::abs(dS[t * f.T + j] * r16(x(1, j, c)));
            q32 += dS32[t * f.T + j] * x(1, j, c);
          }
          dv.add(got(2, t, c), v, v_mag);
          dv_unrounded.add(got(2, t, c), v32, v_mag);
          dk.add(got(1, t, c), k, k_mag);
          dk_unrounded.add(got(1, t, c), k32, k_mag);
          dq.add(got(0, t, c), q, q_mag);
          dq_unrounded.add(got(0, t, c), q32, q_mag);
        }
      }
    }
  }
  std::printf("bf16 attention backward: dv err %.2e (unrounded %.2e), dk %.2e (%.2e), "
              "dq %.2e (%.2e)\n",
              dv.err, dv_unrounded.err, dk.err, dk_unrounded.err, dq.err, dq_unrounded.err);
  EXPECT_LT(dv.err, 1e-5);
  EXPECT_GT(dv_unrounded.err, 1e-3);
  EXPECT_LT(dk.err, 1e-4);
  EXPECT_GT(dk_unrounded.err, 1e-3);
  EXPECT_LT(dq.err, 1e-4);
  EXPECT_GT(dq_unrounded.err, 1e-3);
}

}  // namespace
}  // namespace loom::kernels
